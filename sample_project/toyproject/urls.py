from django.contrib import admin
from django.urls import include, path
from rest_framework import routers

from notes import views

router = routers.DefaultRouter()
router.register(r"notes", views.NoteViewSet)

urlpatterns = [
    path("", views.index, name="index"),
    path("admin/", admin.site.urls),
    path("api/", include(router.urls)),
    path("page/", views.page, name="page"),
    path("stream/", views.stream, name="stream"),
    path("events/", views.events, name="events"),
    path("slow/", views.slow, name="slow"),
    path("download/<str:name>", views.download, name="download"),
    path("echo/", views.echo, name="echo"),
]
