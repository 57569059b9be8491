"""A single-file Django project driven by tests/frameworks/ (not wrapped in the validator)."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="ferrule-tests-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    USE_TZ=True,
    DATA_UPLOAD_MAX_MEMORY_SIZE=10 * 1024 * 1024,
    # Uploads above this go to a temp file: the multipart test crosses it.
    FILE_UPLOAD_MAX_MEMORY_SIZE=256 * 1024,
)

from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path


def index(request):
    return HttpResponse("django index")


def hello(request, name):
    return HttpResponse(f"hello {name}")


def query(request):
    return JsonResponse({k: request.GET.getlist(k) for k in request.GET})


def form(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    return JsonResponse({k: request.POST.getlist(k) for k in request.POST})


def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse(
        {
            "filename": f.name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "field": request.POST.get("field"),
        }
    )


def json_echo(request):
    payload = json.loads(request.body)
    return JsonResponse({"got": payload, "type": type(payload).__name__})


def stream(request):
    n = int(request.GET.get("n", "5"))
    return StreamingHttpResponse((f"line {i}\n" for i in range(n)), content_type="text/plain")


def cookie_set(request):
    resp = HttpResponse("set")
    resp.set_cookie("flavour", request.GET.get("v", "oatmeal"))
    resp.set_cookie("second", "2")
    return resp


def cookie_get(request):
    return JsonResponse(dict(request.COOKIES))


urlpatterns = [
    path("", index),
    path("hello/<str:name>", hello),
    path("query", query),
    path("form", form),
    path("upload", upload),
    path("json", json_echo),
    path("stream", stream),
    path("cookie/set", cookie_set),
    path("cookie/get", cookie_get),
]

application = get_wsgi_application()
