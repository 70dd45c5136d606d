"""Differential cases for rewrite.rs: run Django 6.1.3's real substitution loop (the inner loop of
HashedFilesMixin._post_process) on each case and record its output or error kind.

usage: python django_rewrite_harness.py IN.json OUT.json   (Django 6.1.3 installed)
IN.json: [{"name": "css/s.css", "text": "...", "hashes": {"css/a.png": "<12 hex>"}, "js_modules": false,
           "static_url": "/static/"}]
then:   STATICD_REWRITE_CASES=OUT.json cargo test --lib collect::rewrite -- --ignored
The directories of the `hashes` files exist in the harness's STATIC_ROOT, so a reference to one of them
(url(.), url(img/..), a blank sourceMappingURL) resolves to the directory, as the test's resolver does.
"""
import json, os, sys, tempfile, random
import django
from django.conf import settings
settings.configure(MEDIA_URL="/zz-media/", STATIC_URL="/static/", STATIC_ROOT=tempfile.mkdtemp(), DEBUG=False)
django.setup()
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.contrib.staticfiles.utils import matches_patterns
from django.core.exceptions import SuspiciousFileOperation

HASHES = {}
class S(ManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
    def file_hash(self, name, content=None):
        return HASHES.get(name, "000000000000")
class P(ManifestStaticFilesStorage):
    def file_hash(self, name, content=None):
        return HASHES.get(name, "000000000000")

def hashed(k, h):
    d, f = os.path.split(k); r, e = os.path.splitext(f)
    return os.path.join(d, r + "." + h + e)

def run(name, text, hashes, jsm=False, static_url="/static/"):
    global HASHES
    HASHES = hashes
    root = tempfile.mkdtemp()
    for k in hashes:
        p = os.path.join(root, k); os.makedirs(os.path.dirname(p), exist_ok=True); open(p, "w").close()
    settings.STATIC_URL = static_url
    st = (S if jsm else P)(location=root, base_url=static_url)
    hf = {k: hashed(k, h) for k, h in hashes.items()}
    content = text
    try:
        for ext, patterns in st._patterns.items():
            if matches_patterns(name, (ext,)):
                if not any(p.search(content) for p, _, _ in patterns): continue
                for pattern, template, ign in patterns:
                    conv = st.url_converter(name, hf, template, st.get_ignored_blocks(content, ign))
                    content = pattern.sub(conv, content)
        return {"out": content}
    except SuspiciousFileOperation as e:
        return {"err": "escape"}
    except ValueError as e:
        return {"err": "missing", "msg": str(e), "notes": getattr(e, "__notes__", [])}
    except Exception as e:
        return {"err": type(e).__name__}

cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    r = run(c["name"], c["text"], c.get("hashes", {}), c.get("js_modules", False), c.get("static_url", "/static/"))
    c.update(r); out.append(c)
json.dump(out, open(sys.argv[2], "w"), indent=1, ensure_ascii=False)
print(len(out), "cases;", sum("err" in c for c in out), "errors")
