import json
import random
import time

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import etag
from rest_framework import viewsets

from .models import Note
from .serializers import NoteSerializer


class NoteViewSet(viewsets.ModelViewSet):
    queryset = Note.objects.all()
    serializer_class = NoteSerializer


def index(request):
    return render(request, "notes/index.html", {"notes": Note.objects.all()[:20]})


WORDS = (
    "static files proxy django gunicorn request response header cache browser template "
    "view model query index note draft review release deploy server client compress "
    "stream token session user admin form field value list table page link author date "
    "summary archive search filter order update delete create edit publish comment reply "
    "meeting budget quarter report invoice customer supplier shipment warehouse inventory "
    "schedule holiday travel office printer network laptop password account billing "
    "payment refund discount coupon newsletter campaign audience survey feedback roadmap "
    "sprint backlog ticket incident outage postmortem migration database backup restore "
    "monitoring alert dashboard metric latency throughput capacity planning hiring "
    "interview onboarding training workshop conference keynote speaker agenda minutes "
    "decision proposal contract renewal license vendor security audit compliance policy "
    "privacy retention export import upload download attachment image video thumbnail "
    "gallery calendar reminder deadline milestone launch announcement blog article "
    "recipe garden kitchen bicycle weekend museum concert library lecture homework "
    "project prototype experiment result analysis chart spreadsheet slide presentation"
).split()


def _page_rows(request):
    return max(1, min(int(request.GET.get("kb", "20")), 1024)) * 1024 // 440


@etag(lambda request: f"page-{_page_rows(request)}")
def page(request):
    """`/page/?kb=N`: an HTML page of about N KiB (default 20), the same for the same N:
    a table of notes as a typical Django list view renders it (for compression tests and the
    proxy benchmark)."""
    rng = random.Random(_page_rows(request))
    rows = [
        {
            "id": 1000 + i,
            "title": " ".join(rng.choices(WORDS, k=rng.randint(3, 6))).capitalize(),
            "author": rng.choice(["alice", "bob", "carol", "dave", "erin", "frank"]),
            "date": f"2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
            "summary": " ".join(rng.choices(WORDS, k=rng.randint(8, 16))) + ".",
        }
        for i in range(_page_rows(request))
    ]
    return render(request, "notes/page.html", {"rows": rows})


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
