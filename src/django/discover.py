# staticd discovery program: run by staticd with the project's interpreter.
#
#   python -c <this file> PROJECT [--no-default-ignore] [--ignore PATTERN]...
#
# cwd = PROJECT, DJANGO_SETTINGS_MODULE set by the caller. Prints ONE JSON document on the
# last line of stdout: either the discovery (see src/django/mod.rs `Discovery`) or
# {"error": {"kind": ..., "message": ..., "detail": ...}}. Anything the project prints goes to
# stderr. Works on Django 4.2 - 6.1 and Python 3.8+.
import json
import os
import sys
import traceback

_real_stdout = sys.stdout
sys.stdout = sys.stderr  # settings modules that print() must not corrupt the JSON


def emit(doc, code=0):
    sys.stdout.flush()
    _real_stdout.write(json.dumps(doc) + "\n")
    _real_stdout.flush()
    sys.exit(code)


def fail(kind, message, detail=""):
    emit({"error": {"kind": kind, "message": message, "detail": detail}}, 1)


def exc_text():
    return "".join(traceback.format_exception(*sys.exc_info()))


def exc_line():
    etype, value = sys.exc_info()[:2]
    return "".join(traceback.format_exception_only(etype, value)).strip()


def dotted(cls):
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def main(argv):
    project = argv[0]
    extra_ignore = []
    no_default_ignore = False
    i = 1
    while i < len(argv):
        if argv[i] == "--no-default-ignore":
            no_default_ignore = True
        elif argv[i] == "--ignore":
            i += 1
            extra_ignore.append(argv[i])
        i += 1

    sys.path.insert(0, project)
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")

    try:
        import django
    except Exception:
        fail("django_import", exc_line(), exc_text())

    try:
        from django.conf import settings

        django.setup()
        settings.INSTALLED_APPS  # noqa: B018 (force the import even if setup() was lazy)
    except Exception:
        fail("settings", exc_line(), exc_text())

    from django.apps import apps
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    if not apps.is_installed("django.contrib.staticfiles"):
        fail(
            "improperly_configured",
            "'django.contrib.staticfiles' (or a subclass of its StaticFilesConfig) is not in INSTALLED_APPS.",
        )

    # collectstatic: requires_system_checks = [Tags.staticfiles]
    try:
        issues = checks.run_checks(tags=[checks.Tags.staticfiles])
    except Exception:
        fail("settings", exc_line(), exc_text())
    serious = [e for e in issues if e.is_serious() and not e.is_silenced()]
    for w in issues:
        if not w.is_serious() and not w.is_silenced():
            sys.stderr.write("%s\n" % w)
    if serious:
        fail("checks", "\n".join(str(e) for e in serious))

    try:
        doc = collect_facts(settings, apps, extra_ignore, no_default_ignore)
    except ImproperlyConfigured:
        fail("improperly_configured", str(sys.exc_info()[1]), exc_text())
    except Exception:
        fail("internal", exc_line(), exc_text())
    doc["django_version"] = django.get_version()
    doc["witnesses"] = witnesses(project, apps, settings)
    emit(doc)


def witnesses(project, apps, settings):
    """Paths whose change (mtime, size) can change these facts: the project's imported modules
    (settings, app configs), every app directory (a new static/ dir), the parent of a missing
    STATICFILES_DIRS entry (it appearing) and sys.path entries outside the project (pip
    install). The project directory itself is left out: staticd's own files beside a
    STATIC_ROOT inside it change its mtime on every collect."""
    paths = set()
    project = os.path.abspath(project)
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and os.path.abspath(f).startswith(project + os.sep):
            paths.add(os.path.abspath(f))
    for app in apps.get_app_configs():
        paths.add(os.path.abspath(app.path))
    for entry in getattr(settings, "STATICFILES_DIRS", []):
        root = os.path.abspath(os.fspath(entry[1] if isinstance(entry, (list, tuple)) else entry))
        if not os.path.isdir(root):
            paths.add(os.path.dirname(root))
    for entry in sys.path:
        entry = os.path.abspath(entry) if entry else ""
        if entry and os.path.isdir(entry) and entry != project and not entry.startswith(project + os.sep):
            paths.add(entry)
    return sorted(paths)


def collect_facts(settings, apps, extra_ignore, no_default_ignore):
    from django.contrib.staticfiles import finders as finders_mod
    from django.core.exceptions import ImproperlyConfigured

    from django.core.files.storage import storages  # Django 4.2+

    storage = storages["staticfiles"]
    backend = settings.STORAGES["staticfiles"]["BACKEND"]

    from django.contrib.staticfiles.storage import ManifestFilesMixin

    manifest = isinstance(storage, ManifestFilesMixin)
    compress = False
    try:
        from whitenoise.storage import (
            CompressedManifestStaticFilesStorage,
            CompressedStaticFilesStorage,
        )

        compress = isinstance(storage, (CompressedStaticFilesStorage, CompressedManifestStaticFilesStorage))
    except ImportError:
        pass

    static_root = getattr(storage, "location", None) or settings.STATIC_ROOT
    if not static_root:
        raise ImproperlyConfigured(
            "You're using the staticfiles app without having set the STATIC_ROOT setting to a filesystem path."
        )
    static_root = os.path.abspath(os.fspath(static_root))

    # collectstatic.set_options
    ignore_patterns = list(extra_ignore)
    if not no_default_ignore:
        ignore_patterns += apps.get_app_config("staticfiles").ignore_patterns
    ignore_patterns = sorted({os.path.normpath(p) for p in ignore_patterns})

    sources = []
    for finder in finders_mod.get_finders():
        cls = type(finder)
        if isinstance(finder, finders_mod.FileSystemFinder) and cls.list is finders_mod.FileSystemFinder.list:
            seen = set()
            for prefix, root in finder.locations:
                # FileSystemFinder.list(): `if os.path.isdir(root): storage = self.storages[root]`
                if not os.path.isdir(root):
                    continue
                st = finder.storages[root]
                item = (st.prefix or "", os.fspath(st.location))
                if item in seen:
                    continue
                seen.add(item)
                sources.append({"kind": "dir", "finder": dotted(cls), "prefix": item[0], "root": item[1]})
        elif isinstance(finder, finders_mod.AppDirectoriesFinder) and cls.list is finders_mod.AppDirectoriesFinder.list:
            # AppDirectoriesFinder.list(): `for storage in self.storages.values(): if storage.exists("")`
            for st in finder.storages.values():
                if not st.exists(""):
                    continue
                sources.append(
                    {
                        "kind": "dir",
                        "finder": dotted(cls),
                        "prefix": getattr(st, "prefix", None) or "",
                        "root": os.fspath(st.location),
                    }
                )
        else:
            files = []
            for path, st in finder.list(ignore_patterns):
                prefix = getattr(st, "prefix", None)
                prefixed = os.path.join(prefix, path) if prefix else path
                try:
                    abs_path = st.path(path)
                except NotImplementedError:
                    raise ImproperlyConfigured(
                        "Finder %s lists '%s' from a storage without local paths (%s); staticd can only "
                        "collect files that are on the local filesystem." % (dotted(cls), path, dotted(type(st)))
                    )
                files.append({"path": prefixed.replace(os.sep, "/"), "abs": os.path.abspath(abs_path)})
            sources.append({"kind": "files", "finder": dotted(cls), "files": files})

    manifest_strict = getattr(storage, "manifest_strict", True)
    whitenoise_strict = getattr(settings, "WHITENOISE_MANIFEST_STRICT", None)
    skip = getattr(settings, "WHITENOISE_SKIP_COMPRESS_EXTENSIONS", None)
    return {
        "static_root": static_root,
        "static_url": settings.STATIC_URL,
        "sources": sources,
        "ignore_patterns": ignore_patterns,
        "storage": {
            "class": backend,
            "manifest": manifest,
            "manifest_name": getattr(storage, "manifest_name", "staticfiles.json"),
            "manifest_strict": bool(manifest_strict),
            "js_modules": bool(getattr(storage, "support_js_module_import_aggregation", False)),
            "compress": compress,
        },
        "whitenoise": {
            "keep_only_hashed_files": bool(getattr(settings, "WHITENOISE_KEEP_ONLY_HASHED_FILES", False)),
            "skip_compress_extensions": None if skip is None else [str(e) for e in skip],
            "manifest_strict": None if whitenoise_strict is None else bool(whitenoise_strict),
        },
    }


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit:
        raise
    except BaseException:
        fail("internal", exc_line(), exc_text())
