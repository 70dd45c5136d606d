# staticd discovery program: run by staticd with the project's interpreter.
#
#   python -c <this file> PROJECT [--no-default-ignore] [--ignore PATTERN]...
#
# cwd = PROJECT, DJANGO_SETTINGS_MODULE set by the caller. Prints ONE JSON document on the
# last line of stdout: either the discovery (see src/django/mod.rs `Discovery`) plus "depends"
# (what the facts were derived from, see src/django/memo.rs) or
# {"error": {"kind": ..., "message": ..., "detail": ...}}. Anything the project prints goes to
# stderr. Works on Django 4.2 - 6.1 and Python 3.8+.
import hashlib
import json
import os
import stat as _stat
import sys
import threading
import traceback

# --- What the facts depend on ------------------------------------------------------------
#
# staticd remembers a discovery (src/django/memo.rs) only while everything it was derived
# from is provably the same. The Python side records what the settings import, django.setup()
# and the finders touched, each observed when it was used:
#
#   stat    [path, follow, obs]   a path stat'ed (os.stat/lstat/access, os.path.exists/isdir/
#                                 isfile/islink, pathlib's exists/is_dir/stat, realpath), a
#                                 module's file, a code file opened by the import system.
#                                 obs: "-" absent, "d" a directory, "o" a device, FIFO or
#                                 socket (only their type is used), "e<errno>" another error,
#                                 else [type, dev, ino, size, mtime_ns, ctime_ns].
#   listing [path, md5, late, skip] a directory listed (os.listdir/scandir: the import
#                                 system's FileFinder, glob, os.walk, pathlib's iterdir/glob):
#                                 md5 of its sorted names (bytes, "/" appended to those of
#                                 directories, NUL-separated), staticd's own `.NAME.staticd-*`
#                                 files and `skip` (the entry leading to STATIC_ROOT) left out.
#   content [path, size, md5, late] a small non-code file opened for reading (.env, JSON,
#                                 INI...): its bytes' digest (absent or large: a stat entry).
#   unmemo  [reason]              something no record can cover (a subprocess, the network).
#
# CPython audits open, os.listdir and os.scandir, but no stat-like call (os.stat, os.lstat,
# os.access and everything built on them), so those are wrapped. `late` marks an observation
# made after the thing was used (the sys.path listings and .pth files `site` read at start-up):
# staticd then also requires it to be older than the run.
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".so", ".pyd", ".pth")
_CONTENT_MAX = 256 * 1024
_UNMEMO_EVENTS = {
    "subprocess.Popen": "started a subprocess",
    "os.system": "ran os.system()",
    "os.exec": "ran os.exec*()",
    "os.posix_spawn": "spawned a process",
    "os.spawn": "spawned a process",
    "os.fork": "forked",
    "os.forkpty": "forked",
    "socket.connect": "opened a network connection",
    "socket.getaddrinfo": "resolved a host name",
    "socket.gethostbyname": "resolved a host name",
    "socket.gethostbyaddr": "resolved a host address",
    "urllib.Request": "made a URL request",
    "sqlite3.connect": "opened an SQLite database",
}
_OWN = b".staticd-"


def _md5(data):
    try:
        h = hashlib.md5(data, usedforsecurity=False)  # a change detector, not security
    except TypeError:  # Python 3.8
        h = hashlib.md5(data)
    return h.hexdigest()


class Depends:
    def __init__(self):
        self.stat = {}
        self.listing = {}
        self.content = {}
        self.unmemo = []
        self.tls = threading.local()
        self.real_stat = os.stat
        self.real_lstat = os.lstat
        self.real_access = os.access

    # -- observations
    @staticmethod
    def key(path):
        if isinstance(path, int) or path is None:
            return None
        try:
            path = os.fspath(path)
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            path.encode("utf-8")  # JSON carries UTF-8 paths only
        except (TypeError, UnicodeError, ValueError):
            return False
        return os.path.abspath(path) if path else os.getcwd()

    def unusable(self, path):
        self.unmemo.append("used a path that is not UTF-8: %r" % (path,))

    @staticmethod
    def obs(st=None, err=None):
        if err is not None:
            if isinstance(err, (FileNotFoundError, NotADirectoryError)):
                return "-"
            return "e%s" % getattr(err, "errno", "")
        if _stat.S_ISDIR(st.st_mode):
            return "d"
        if not (_stat.S_ISREG(st.st_mode) or _stat.S_ISLNK(st.st_mode)):
            return "o"  # a device, FIFO or socket: only its type (/dev/null's times churn)
        kind = "l" if _stat.S_ISLNK(st.st_mode) else "f"
        return [kind, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def record_stat(self, key, follow, st=None, err=None):
        k = (key, bool(follow))
        if k not in self.stat:
            self.stat[k] = self.obs(st, err)

    def probe_stat(self, key, follow=True):
        if (key, follow) in self.stat:
            return
        try:
            st = self.real_stat(key) if follow else self.real_lstat(key)
        except OSError as e:
            self.record_stat(key, follow, err=e)
        else:
            self.record_stat(key, follow, st)

    def probe_listing(self, key, late=False):
        if key in self.listing:
            return
        try:
            with os.scandir(os.fsencode(key)) as it:
                names = [e.name + b"/" if e.is_dir(follow_symlinks=False) else e.name for e in it]
        except OSError as e:
            self.record_stat(key, True, err=e)
            return
        self.listing[key] = [names, late]

    def probe_content(self, key, late=False):
        if key in self.content:
            return
        try:
            st = self.real_stat(key)
        except OSError as e:
            self.record_stat(key, True, err=e)
            return
        if not _stat.S_ISREG(st.st_mode) or st.st_size > _CONTENT_MAX:
            self.record_stat(key, True, st)
            return
        try:
            with open(key, "rb") as f:
                data = f.read(_CONTENT_MAX + 1)
        except OSError as e:
            self.record_stat(key, True, err=e)
            return
        self.content[key] = [len(data), _md5(data), late]

    # -- the audit hook and the stat wrappers
    def hook(self, event, args):
        if event == "open" or event == "os.listdir" or event == "os.scandir" or event in _UNMEMO_EVENTS:
            tls = self.tls
            if getattr(tls, "busy", False):
                return
            tls.busy = True
            try:
                self.on_event(event, args)
            except Exception:
                self.unmemo.append("could not record %s%r: %s" % (event, args, exc_line()))
            finally:
                tls.busy = False

    def on_event(self, event, args):
        if event in _UNMEMO_EVENTS:
            self.unmemo.append(_UNMEMO_EVENTS[event])
            return
        path = args[0] if args else None
        if event != "open" and path is None:
            path = "."
        key = self.key(path)
        if key is None:
            return
        if key is False:
            return self.unusable(path)
        if event != "open":
            return self.probe_listing(key)
        mode, flags = args[1], args[2]
        if mode is None:  # os.open: flags only
            reading = flags & os.O_ACCMODE == os.O_RDONLY
        else:
            reading = not any(c in mode for c in "wax")
        if not reading:
            return  # what a program writes does not change what it read
        if key.endswith(_CODE_SUFFIXES):
            self.probe_stat(key)
        else:
            self.probe_content(key)

    def wrap(self):
        deps = self

        def observed(real, follow):
            def wrapper(path, *args, **kwargs):
                tls = deps.tls
                if getattr(tls, "busy", False) or kwargs.get("dir_fd") is not None:
                    return real(path, *args, **kwargs)
                fol = follow and kwargs.get("follow_symlinks", True)
                key = deps.key(path)
                try:
                    st = real(path, *args, **kwargs)
                except OSError as e:
                    if key:
                        deps.record_stat(key, fol, err=e)
                    raise
                if key:
                    deps.record_stat(key, fol, st)
                elif key is False:
                    deps.unusable(path)
                return st

            wrapper.__name__ = real.__name__
            wrapper.__doc__ = real.__doc__
            return wrapper

        def access(path, mode, *args, **kwargs):
            tls = deps.tls
            if not getattr(tls, "busy", False) and kwargs.get("dir_fd") is None:
                key = deps.key(path)
                if key:
                    tls.busy = True
                    try:
                        deps.probe_stat(key, kwargs.get("follow_symlinks", True))
                    finally:
                        tls.busy = False
                elif key is False:
                    deps.unusable(path)
            return deps.real_access(path, mode, *args, **kwargs)

        access.__doc__ = self.real_access.__doc__
        wrapped = {
            self.real_stat: observed(self.real_stat, True),
            self.real_lstat: observed(self.real_lstat, False),
            self.real_access: access,
        }
        os.stat, os.lstat, os.access = wrapped[os.stat], wrapped[os.lstat], wrapped[os.access]
        # The wrappers accept what the real functions do (shutil and others ask these sets).
        for name in ("supports_dir_fd", "supports_fd", "supports_follow_symlinks", "supports_effective_ids"):
            supported = getattr(os, name, None)
            if isinstance(supported, set):
                for real, wrapper in wrapped.items():
                    if real in supported:
                        supported.add(wrapper)

    def install(self):
        """Before anything of the project runs."""
        self.wrap()
        sys.addaudithook(self.hook)
        self.tls.busy = True
        try:
            self.startup()
        finally:
            self.tls.busy = False

    def startup(self):
        """What Python read before this program started: the interpreter, pyvenv.cfg, the
        sys.path directories and the .pth files in them (site-packages)."""
        exe = self.key(sys.executable)
        if exe:
            self.probe_stat(exe, True)
            self.probe_stat(exe, False)
            for d in (os.path.dirname(exe), os.path.dirname(os.path.dirname(exe))):
                self.probe_content(os.path.join(d, "pyvenv.cfg"), late=True)
        for entry in sys.path:
            # "" (python -c's cwd entry) is put in after `site` ran; the project directory
            # is listed by the import system when it is first used.
            key = self.key(entry) if entry else None
            if not key:
                continue
            if os.path.isdir(key):
                self.probe_listing(key, late=True)
                try:
                    pth = [n for n in os.listdir(key) if n.endswith(".pth")]
                except OSError:
                    pth = []
                for n in sorted(pth):
                    self.probe_content(os.path.join(key, n), late=True)
            else:
                self.probe_stat(key, True)

    def finish(self, static_root):
        """The files of every module loaded (a module imported from its cached .pyc was never
        opened as source), then the record as JSON. STATIC_ROOT is collect's output, not an
        input: what lies in it (the manifest storage reads the old manifest) and the entries
        leading to it in listed directories are left out, like staticd's own files beside it."""
        self.tls.busy = True
        for mod in list(sys.modules.values()):
            f = getattr(mod, "__file__", None)
            if isinstance(f, str):
                key = self.key(f)
                if key:
                    self.probe_stat(key, True)
        root = static_root.rstrip(os.sep) or os.sep

        def inside(path):
            return path == root or path.startswith(root + os.sep)

        def skip_of(path):
            """The entry of `path` that leads to STATIC_ROOT (collect makes it), if any."""
            if inside(path) or not root.startswith(path.rstrip(os.sep) + os.sep):
                return None
            return os.path.relpath(root, path).split(os.sep)[0]

        def digest(path, names):
            skip = skip_of(path)
            skip = os.fsencode(skip) if skip else None
            own = lambda n: n.startswith(b".") and _OWN in n  # noqa: E731
            kept = [n for n in names if not own(n) and n.rstrip(b"/") != skip]
            return _md5(b"\0".join(sorted(kept)))

        return {
            "stat": [[k[0], k[1], v] for k, v in sorted(self.stat.items()) if not inside(k[0])],
            "listing": [
                [k, digest(k, v[0]), v[1], skip_of(k)]
                for k, v in sorted(self.listing.items())
                if not inside(k)
            ],
            "content": [[k] + v for k, v in sorted(self.content.items()) if not inside(k)],
            "unmemo": sorted(set(self.unmemo)),
        }


DEPENDS = Depends()

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

    DEPENDS.install()
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
    except UnsupportedStorage:
        fail("unsupported_storage", str(sys.exc_info()[1]))
    except Exception:
        fail("internal", exc_line(), exc_text())
    doc["django_version"] = django.get_version()
    doc["depends"] = DEPENDS.finish(doc["static_root"])
    emit(doc)


# HashedFilesMixin/ManifestFilesMixin methods whose behaviour is the collected output: an
# override of one of them in the project's storage class is Python staticd cannot run, so
# discovery refuses it rather than collect something Django would not.
OUTPUT_METHODS = (
    "file_hash", "hashed_name", "_url", "url_converter", "post_process", "_post_process",
    "clean_name", "hash_key", "_stored_name", "save_manifest", "manifest_version",
    "keep_intermediate_files", "max_post_process_passes", "get_ignored_blocks",
    "is_in_ignored_block",
)


class UnsupportedStorage(Exception):
    pass


# Django's patterns in Django's order (src/collect/rewrite/rules.rs knows them by these names).
RULE_ORDER = [
    "css_url", "css_import", "css_source_map", "js_source_map",
    "js_import_from", "js_export_from", "js_import_bare", "js_import_dynamic",
]


def rule_table():
    """Django's own rewrite rules, each under the name staticd's rewriter knows it by, as
    HashedFilesMixin.__init__ compiles them: (glob, pattern, flags, template, ignored_re)."""
    from django.contrib.staticfiles import storage as st

    names = {"*.css": RULE_ORDER[0:3], "*.js": RULE_ORDER[3:4], "modules": RULE_ORDER[4:8]}
    mixin = st.HashedFilesMixin
    groups = [(g, g, pats) for g, pats in mixin.patterns]
    groups.append(("modules",) + tuple(mixin._js_module_import_aggregation_patterns))
    table = {}
    for key, glob, pats in groups:
        for name, pattern in zip(names[key], pats):
            table[compiled_rule(glob, pattern, mixin.default_template)] = name
    return table


def compiled_rule(glob, pattern, default_template):
    """One entry of `HashedFilesMixin._patterns`, made comparable (HashedFilesMixin.__init__)."""
    import re
    from django.contrib.staticfiles import storage as st

    if isinstance(pattern, (tuple, list)):
        if len(pattern) == 3:
            pattern, template, ignored = pattern
        else:
            (pattern, template), ignored = pattern, st._css_ignored_re
    else:
        template, ignored = default_template, st._css_ignored_re
    compiled = re.compile(pattern, re.IGNORECASE)
    return (glob, compiled.pattern, compiled.flags, template, ignored.pattern, ignored.flags)


def manifest_rules(storage):
    """The names of the rewrite rules `storage` runs, per glob in its order, when they are
    Django's own (all of them, or some, as a subclass that drops the sourceMappingURL
    patterns has); UnsupportedStorage for anything else staticd cannot reproduce."""
    cls = type(storage)
    where = "%s (%s)" % (dotted(cls), getattr(sys.modules.get(cls.__module__), "__file__", "?"))
    for name in OUTPUT_METHODS:
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is not None and not owner.__module__.split(".")[0] in ("django", "whitenoise"):
            raise UnsupportedStorage(
                "%s overrides %s (in %s): staticd reproduces Django's and WhiteNoise's storages, "
                "not Python code of a project's own, so it would not collect what Django collects. "
                "Remove the override, or use a storage staticd supports."
                % (where, name, dotted(owner))
            )
    table = rule_table()
    rules = {}
    for glob, compiled in storage._patterns.items():
        names = []
        for regex, template, ignored in compiled:
            key = (glob, regex.pattern, regex.flags, template, ignored.pattern, ignored.flags)
            if key not in table:
                raise UnsupportedStorage(
                    "%s has a rewrite pattern for %r that is not one of Django's: %r -> %r. "
                    "staticd runs Django's own patterns (all, or a subset in Django's order) only."
                    % (where, glob, regex.pattern, template)
                )
            names.append(table[key])
        order = [RULE_ORDER.index(n) for n in names]
        if order != sorted(set(order)):
            raise UnsupportedStorage(
                "%s runs Django's %r patterns in another order or twice (%s): staticd runs them "
                "in Django's order only." % (where, glob, ", ".join(names))
            )
        rules[glob] = names
    return rules


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

    rules = manifest_rules(storage) if manifest else None
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
            "rules": rules,
            "compress": compress,
        },
        "whitenoise": {
            # WhiteNoise's CompressedManifestStaticFilesStorage reads the setting (a property
            # of the storage); any other storage, Django's own included, keeps the originals.
            "keep_only_hashed_files": bool(getattr(storage, "keep_only_hashed_files", False)),
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
