# SPDX-License-Identifier: Apache-2.0
"""A test-only stand-in for prometheus-nats-exporter: nats-server's ``/varz`` as ``gnatsd_varz_*`` gauges.

The Compose stack runs the real exporter (an image; Prometheus job ``nats``). It is not installed here, so the
observability tests serve the same series themselves, the way the exporter makes them (``collector/collector.go``:
every numeric top-level field of ``/varz`` becomes a gauge ``gnatsd_varz_<field>{server_id="<monitoring URL>"}``, and
``server_id``, ``server_name`` and ``version`` become ``gnatsd_varz_<field>{server_id=..., value="..."} 1``). Only
what the dashboards and alerts read is exercised; this is not a reimplementation of the exporter.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABEL_FIELDS = ("server_id", "server_name", "version")


def render_varz(varz: dict, server_id: str) -> str:
    """Prometheus text exposition of a ``/varz`` document."""
    lines = []
    sid = server_id.replace("\\", "\\\\").replace('"', '\\"')
    for key, value in varz.items():
        name = f"gnatsd_varz_{key}"
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        if isinstance(value, str):
            if key not in LABEL_FIELDS:
                continue
            text = value.replace("\\", "\\\\").replace('"', '\\"')
            lines += [f"# TYPE {name} gauge", f'{name}{{server_id="{sid}",value="{text}"}} 1']
        else:
            lines += [f"# TYPE {name} gauge", f'{name}{{server_id="{sid}"}} {float(value)!r}']
    return "\n".join(lines) + "\n"


class NatsExporterShim:
    """Serves ``/metrics`` on 127.0.0.1:``port`` (0: any free port), reading ``monitor_url``/varz at every scrape."""

    def __init__(self, monitor_url: str, port: int = 0) -> None:
        self.monitor_url = monitor_url.rstrip("/")
        shim = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                try:
                    with urllib.request.urlopen(f"{shim.monitor_url}/varz", timeout=2) as response:
                        varz = json.load(response)
                except OSError as exc:
                    self.send_error(503, f"nats-server monitoring: {exc}")
                    return
                body = render_varz(varz, shim.monitor_url).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
