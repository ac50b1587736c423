"""Shared fixtures: a PEP 503 package index on loopback, so range resolution never leaves the host."""

import http.server
import threading

import pytest

from harness import index

TF = ["2.0.4", "2.1.4", "2.2.3", "2.3.4", "2.4.4", "2.5.3", "2.6.5", "2.7.4", "2.8.4", "2.9.3", "2.10.1", "2.11.0", "2.11.1", "2.12.0",
      "2.12.1", "2.13.0rc1", "2.13.1", "2.14.1", "2.15.1", "2.16.2", "2.17.1", "2.18.1", "2.19.1",
      "2.20.0", "2.21.0"]
FILES = {
    # a wheel per CPython each release supports, as on PyPI for the old ones (2.0.4, 2.1.4: 3.6, 3.7;
    # 2.2.3 to 2.4.4: 3.6 to 3.8); the rest: 3.8 to 3.13
    "tensorflow": ["tensorflow-%s-cp3%d-cp3%d-manylinux_2_17_x86_64.whl" % (v, py, py) for v in TF
                   for py in ((6, 7) if v in ("2.0.4", "2.1.4") else (6, 7, 8) if v in ("2.2.3", "2.3.4", "2.4.4")
                              else range(8, 14))],
    "keras": ["keras-%s-py3-none-any.whl" % v for v in ("3.0.5", "3.1.0", "3.1.1", "3.3.3", "3.6.0", "3.7.0", "3.8.0",
                                                       "3.9.2", "3.12.4", "3.15.1")],
    "tf-keras": ["tf_keras-%s-py3-none-any.whl" % v
                 for v in ("2.15.1", "2.16.0", "2.17.0", "2.18.0", "2.19.0", "2.20.1", "2.21.0")],
}


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = self.path.strip("/").split("/")[-1]
        body = "".join('<a href="../../f/%s">%s</a>\n' % (f, f) for f in FILES.get(name, []))
        self.send_response(200 if name in FILES else 404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(("<html><body>%s</body></html>" % body).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_index(monkeypatch, tmp_path):
    """TFCOMPAT_INDEX_URL points at a loopback index serving FILES; caches are cleared around it."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/simple" % server.server_port
    monkeypatch.setenv("TFCOMPAT_INDEX_URL", url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "index-cache"))
    index.forget()
    yield url
    server.shutdown()
    index.forget()
