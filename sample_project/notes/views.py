import json
import time

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from rest_framework import viewsets

from .models import Note
from .serializers import NoteSerializer


class NoteViewSet(viewsets.ModelViewSet):
    queryset = Note.objects.all()
    serializer_class = NoteSerializer


def index(request):
    return render(request, "notes/index.html", {"notes": Note.objects.all()[:20]})


def stream(request):
    """Chunks arrive one by one: a proxy must not buffer the whole body."""

    def chunks():
        for i in range(5):
            yield f"chunk {i}\n"
            time.sleep(0.1)

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def events(request):
    """Server-sent events."""
    count = min(int(request.GET.get("n", "3")), 100)

    def gen():
        for i in range(count):
            yield f"id: {i}\nevent: tick\ndata: {json.dumps({'n': i})}\n\n"
            time.sleep(0.1)

    response = StreamingHttpResponse(gen(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def slow(request):
    """`/slow/?s=N` answers after N seconds (for timeout tests)."""
    seconds = float(request.GET.get("s", "1"))
    time.sleep(max(0.0, min(seconds, 600.0)))
    return HttpResponse(f"slept {seconds}\n", content_type="text/plain")


def download(request, name):
    """Hands the body to the proxy through X-Accel-Redirect."""
    response = HttpResponse(content_type="application/octet-stream")
    response["X-Accel-Redirect"] = f"/protected/{name}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def echo(request):
    """What Django saw of the request (headers, client address, scheme, host)."""
    headers = dict(request.headers.items())
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "query": request.META.get("QUERY_STRING", ""),
            "headers": headers,
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "scheme": request.scheme,
            "is_secure": request.is_secure(),
            "host": request.get_host(),
        }
    )
