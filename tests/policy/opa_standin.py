"""A STAND-IN for an OPA server, for tests only: OPA's documented REST API answered by regorus.

There is no ``opa`` binary in any registry this machine reaches, so the OPA backend
(:mod:`workers.policy.opa_backend`, which speaks to OPA through opa-python-client)
is tested against this stand-in, and also against a real ``opa`` when one is on PATH
(see ``conftest.py``). The stand-in implements the subset Lintas uses, with OPA's
status codes and JSON shapes (https://www.openpolicyagent.org/docs/rest-api):

- ``GET /health``
- ``GET /v1/policies``, ``GET|PUT|DELETE /v1/policies/{id}`` (PUT parses the module and
  answers 400 with ``rego_parse_error`` and its location, like OPA)
- ``PUT|DELETE /v1/data/{path}`` (base documents)
- ``POST /v1/data/{path}`` with ``{"input": ...}``: ``{"result": value}``, or ``{}`` when
  undefined; 500 with ``{"code": "internal_error", ...}`` on an evaluation error.

It is NOT OPA: it has no type checker and no bundles, and it is always strict about
built-in errors (OPA is only with ``strict-builtin-errors=true``, which Lintas sends).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import regorus

from lintas.workers.policy.engine import regorus_error

_IDENT = re.compile(r"[A-Za-z_]\w*")


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.requests: list[tuple[str, str]] = []


def _ref(parts: list[str]) -> str:
    return "data" + "".join(f".{p}" if _IDENT.fullmatch(p) else f"[{json.dumps(p)}]" for p in parts)


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # ------------------------------------------------------------------ helpers
    def _send(self, status: int, body: Any | None = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self) -> tuple[str, list[str]]:
        path = urlsplit(self.path).path
        self.state.requests.append((self.command, path))
        for prefix in ("/v1/policies", "/v1/data"):
            if path == prefix or path.startswith(prefix + "/"):
                rest = path[len(prefix) :].strip("/")
                return prefix, [unquote(p) for p in rest.split("/")] if rest else []
        return path, []

    # ------------------------------------------------------------------ verbs
    def do_GET(self) -> None:
        prefix, parts = self._route()
        st = self.state
        if prefix == "/health":
            self._send(200, {})
        elif prefix == "/v1/policies" and not parts:
            with st.lock:
                self._send(200, {"result": [{"id": k, "raw": v} for k, v in sorted(st.policies.items())]})
        elif prefix == "/v1/policies":
            pid = "/".join(parts)
            with st.lock:
                raw = st.policies.get(pid)
            if raw is None:
                self._send(
                    404, {"code": "resource_not_found", "message": f"storage_not_found_error: policy id {pid!r}"}
                )
            else:
                self._send(200, {"result": {"id": pid, "raw": raw}})
        else:
            self._send(404, {"code": "resource_not_found", "message": "not found"})

    def do_PUT(self) -> None:
        prefix, parts = self._route()
        body = self._body()
        st = self.state
        if prefix == "/v1/policies" and parts:
            pid = "/".join(parts)
            source = body.decode("utf-8", errors="replace")
            try:
                regorus.Engine().add_policy(pid, source)
            except Exception as exc:
                msg, file, line, col = regorus_error(str(exc))
                self._send(
                    400,
                    {
                        "code": "invalid_parameter",
                        "message": "error(s) occurred while compiling module(s)",
                        "errors": [
                            {
                                "code": "rego_parse_error",
                                "message": msg,
                                "location": {"file": file or pid, "row": line or 1, "col": col or 1},
                            }
                        ],
                    },
                )
                return
            with st.lock:
                st.policies[pid] = source
            self._send(200, {})
        elif prefix == "/v1/data":
            try:
                value = json.loads(body or b"null")
            except ValueError as exc:
                self._send(400, {"code": "invalid_parameter", "message": str(exc)})
                return
            with st.lock:
                if not parts:
                    st.data = value if isinstance(value, dict) else {}
                else:
                    node = st.data
                    for p in parts[:-1]:
                        node = node.setdefault(p, {})
                    node[parts[-1]] = value
            self._send(204)
        else:
            self._send(404, {"code": "resource_not_found", "message": "not found"})

    def do_DELETE(self) -> None:
        prefix, parts = self._route()
        st = self.state
        with st.lock:
            if prefix == "/v1/policies" and parts and st.policies.pop("/".join(parts), None) is not None:
                self._send(200, {})
                return
            if prefix == "/v1/data" and parts:
                node: Any = st.data
                for p in parts[:-1]:
                    node = node.get(p) if isinstance(node, dict) else None
                if isinstance(node, dict) and parts[-1] in node:
                    del node[parts[-1]]
                    self._send(204)
                    return
        self._send(404, {"code": "resource_not_found", "message": "not found"})

    def do_POST(self) -> None:
        prefix, parts = self._route()
        if prefix != "/v1/data":
            self._send(404, {"code": "resource_not_found", "message": "not found"})
            return
        try:
            doc = json.loads(self._body() or b"{}")
        except ValueError as exc:
            self._send(400, {"code": "invalid_parameter", "message": str(exc)})
            return
        st = self.state
        with st.lock:
            policies, data = dict(st.policies), json.dumps(st.data)
        try:
            eng = regorus.Engine()
            for pid in sorted(policies):
                eng.add_policy(pid, policies[pid])
            eng.add_data_json(data)
            eng.set_input_json(json.dumps(doc.get("input", {})))
            raw = json.loads(eng.eval_query_as_json(_ref(parts)))
        except Exception as exc:
            msg, file, line, _ = regorus_error(str(exc))
            where = f"{file}:{line}: " if file else ""
            self._send(500, {"code": "internal_error", "message": f"{where}eval_builtin_error: {msg}"})
            return
        results = raw.get("result") or []
        if not results:
            self._send(200, {})
            return
        self._send(200, {"result": results[0]["expressions"][0]["value"]})


@contextmanager
def opa_standin() -> Iterator[tuple[str, _State]]:
    """Run the stand-in on a free port of 127.0.0.1; yields (base URL, its state)."""
    state = _State()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="opa-standin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
