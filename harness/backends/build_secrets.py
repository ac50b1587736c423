"""What an image build needs to reach the package index, served to that build alone.

The CA bundle, the index URL and the pip config are handed to `docker build` through a loopback HTTP
server that lives for one build under an unguessable path; the Dockerfile fetches them, uses them
and deletes them in one step, so no layer and no build argument holds them.
"""

from __future__ import annotations

import configparser
import http.server
import os
import secrets
import threading

PIP_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def pip_settings(environ: dict | None = None) -> dict[str, str]:
    """The user's pip settings that mean something inside a container: index URLs (http/https only:
    a file:// index is a host path), trusted hosts, timeout, and the CA bundle's host path."""
    environ = dict(os.environ if environ is None else environ)
    found: dict[str, str] = {}
    files = [os.path.expanduser(p) for p in PIP_CONFIGS]
    if environ.get("PIP_CONFIG_FILE"):
        files.append(environ["PIP_CONFIG_FILE"])
    for path in files:  # later files win, as pip reads them
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                found.update({k: v.strip() for k, v in parser.items(section)})
    for key in ("index-url", "extra-index-url", "trusted-host", "timeout", "cert"):
        var = "PIP_" + key.upper().replace("-", "_")
        if environ.get(var):
            found[key] = environ[var]
    if environ.get("UV_INDEX_URL") and "index-url" not in found:
        found["index-url"] = environ["UV_INDEX_URL"]
    out: dict[str, str] = {}
    for key in ("index-url", "extra-index-url"):
        urls = [u for u in found.get(key, "").split() if u.startswith(("http://", "https://"))]
        if urls:
            out[key] = " ".join(urls)
    if found.get("trusted-host"):
        out["trusted-host"] = found["trusted-host"]
    out["timeout"] = found.get("timeout") or environ.get("PIP_DEFAULT_TIMEOUT") or "120"
    out["cert"] = _ca_bundle(found.get("cert"), environ)
    return out


def _ca_bundle(configured: str | None, environ: dict) -> str:
    for path in (configured, environ.get("SSL_CERT_FILE"), environ.get("REQUESTS_CA_BUNDLE"), SYSTEM_BUNDLE):
        if path and os.path.isfile(path):
            return path
    import certifi  # the docker SDK's requests brings it

    return certifi.where()


def pip_conf(settings: dict[str, str]) -> str:
    """The pip.conf a build uses (the CA goes separately, as ca.pem)."""
    lines = ["[global]", "disable-pip-version-check = true"]
    lines += ["%s = %s" % (k, v) for k, v in sorted(settings.items()) if k != "cert"]
    return "\n".join(lines) + "\n"


class BuildSecrets:
    """`with BuildSecrets(settings) as url:` serves `url + "ca.pem"` and `url + "pip.conf"` on
    127.0.0.1 until the block ends; every other path is a 404."""

    def __init__(self, settings: dict[str, str]) -> None:
        with open(settings["cert"], "rb") as fh:
            ca = fh.read()
        token = secrets.token_urlsafe(24)
        self.files = {"/%s/ca.pem" % token: ca, "/%s/pip.conf" % token: pip_conf(settings).encode()}
        self.token = token
        self.server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> str:
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d/%s/" % (self.server.server_port, self.token)

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
