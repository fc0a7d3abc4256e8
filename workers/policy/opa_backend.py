"""The OPA backend: a real OPA server (>= 1.0, Rego v1), through ``opa-python-client``.

Per evaluation, under a fresh private root ``data.<ns>`` (so concurrent workers and
different repos sharing one server never see each other's modules):

1. ``PUT /v1/data/<ns>`` the data document;
2. ``PUT /v1/policies/<ns>/<file>`` every module, rewritten under ``<ns>`` (see
   :func:`workers.policy.rego_source.namespace`), dependencies first;
3. ``POST /v1/data/<ns>/lintas/decision/result?strict-builtin-errors=true`` with the input
   (strict, so a built-in error is an error, as with regorus, and not a silent undefined);
4. ``DELETE`` everything uploaded, whatever happened.

Any failure (unreachable, timeout, HTTP error, parse error, undefined answer) raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from opa_client import OpaClient  # type: ignore[import-untyped,unused-ignore]
from opa_client.errors import ConnectionsError, RegoParseError  # type: ignore[import-untyped,unused-ignore]

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import ConfigError
from lintas.workers.policy.engine import (
    DECISION_PACKAGE,
    DECISION_RULE,
    Decision,
    Modules,
    TestResult,
    check_answer,
    decision_program,
    module_infos,
    ordered,
    parse_decision,
    test_rules,
)
from lintas.workers.policy.errors import (
    PolicyError,
    PolicyEvaluationError,
    PolicySyntaxError,
    PolicyTimeoutError,
    PolicyUnavailableError,
)
from lintas.workers.policy.rego_source import namespace

STRICT = {"strict-builtin-errors": "true"}


def parse_opa_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"LINTAS_OPA_URL must be http(s)://host[:port], got {url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"LINTAS_OPA_URL must not have a path or query (the API is at /v1), got {url!r}")
    return parts.hostname, parts.port or 8181, parts.scheme == "https"


class OpaEngine:
    name = "opa"

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 5.0, retries: int = 0) -> None:
        self.url = url.rstrip("/")
        self._host, self._port, self._ssl = parse_opa_url(url)
        self._token = token
        self.timeout_s = timeout_s
        self.retries = retries

    # ------------------------------------------------------------------ protocol
    def evaluate(self, modules: Modules, input: Mapping[str, Any], data: Mapping[str, Any]) -> Decision:
        program = decision_program(modules)
        with self._session(program.modules, data) as (client, ns):
            answer = self._query(client, f"{ns}.{DECISION_PACKAGE}", DECISION_RULE, dict(input))
        return parse_decision(check_answer(answer.get("result"), "the decision", self.name), self.name)

    def run_tests(self, modules: Modules, data: Mapping[str, Any] | None = None) -> list[TestResult]:
        module_infos(modules)
        results = []
        with self._session(dict(modules), data or {}) as (client, ns):
            for file, pkg, rule, line in test_rules(modules):
                try:
                    answer = self._query(client, f"{ns}.{pkg}", rule, {})
                except PolicyEvaluationError as exc:
                    results.append(TestResult(pkg, rule, file, line, passed=False, error=exc.reason))
                    continue
                results.append(TestResult(pkg, rule, file, line, passed=answer.get("result") is True))
        return results

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _session(self, modules: Mapping[str, str], data: Mapping[str, Any]) -> Iterator[tuple[OpaClient, str]]:
        ns = "lintas_eval_" + uuid.uuid4().hex[:16]
        client = OpaClient(
            host=self._host,
            port=self._port,
            ssl=self._ssl,
            token=self._token,
            retries=self.retries,
            timeout=self.timeout_s,
        )
        uploaded: list[str] = []
        try:
            with self._errors():
                client.update_or_create_data(dict(data), ns)
                self._upload(client, ns, modules, uploaded)
            yield client, ns
        finally:
            for pid in uploaded:
                with suppress(Exception):
                    client.delete_policy(pid)
            with suppress(Exception):
                client.delete_data(ns)
            client.close_connection()

    def _upload(self, client: OpaClient, ns: str, modules: Mapping[str, str], uploaded: list[str]) -> None:
        """Dependencies first; modules that fail are retried after the others (a module can
        only be compiled once the functions it calls are loaded)."""
        infos = module_infos(modules)
        pending = ordered(modules, infos)
        while pending:
            failed: list[tuple[str, RegoParseError]] = []
            for name in pending:
                pid = f"{ns}/{name}"
                try:
                    client.update_policy_from_string(namespace(modules[name], ns), pid, rego_compat=False)
                    uploaded.append(pid)
                except RegoParseError as exc:
                    if not exc.errors:  # not a compile error: 401, 403, 500, ...
                        raise PolicyEvaluationError(
                            f"opa: cannot upload {name}: {exc.expression}: {exc.message}"
                        ) from exc
                    failed.append((name, exc))
            if len(failed) == len(pending):
                raise self._parse_error(ns, failed)
            pending = [name for name, _ in failed]

    def _parse_error(self, ns: str, failed: list[tuple[str, RegoParseError]]) -> PolicySyntaxError:
        diags = []
        for name, exc in failed:
            for err in exc.errors or [{"message": str(exc.message)}]:
                loc = err.get("location") or {}
                file = str(loc.get("file") or name).removeprefix(f"{ns}/")
                diags.append(
                    Diagnostic(
                        file=file,
                        line=loc.get("row"),
                        column=loc.get("col"),
                        message=f"{err.get('code', 'error')}: {err.get('message', '')}".strip(),
                    )
                )
        return PolicySyntaxError(diags, f"OPA rejected {len(failed)} policy module(s)")

    def _query(self, client: OpaClient, package: str, rule: str, input: dict[str, Any]) -> dict[str, Any]:
        with self._errors():
            try:
                answer = client.query_rule(input_data=input, package_path=package, rule_name=rule, query_params=STRICT)
            except requests.HTTPError as exc:
                body = exc.response.text[:500] if exc.response is not None else str(exc)
                raise PolicyEvaluationError(f"opa: evaluation failed: {body}") from exc
        if not isinstance(answer, dict):
            raise PolicyEvaluationError(f"opa: unexpected answer {str(answer)[:200]}")
        return answer

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (PolicyError, PolicySyntaxError):
            raise
        except requests.Timeout as exc:
            raise PolicyTimeoutError(f"opa: no answer from {self.url} within {self.timeout_s:g} s") from exc
        except (requests.ConnectionError, ConnectionsError) as exc:
            if _timed_out(exc):
                raise PolicyTimeoutError(f"opa: no answer from {self.url} within {self.timeout_s:g} s") from exc
            raise PolicyUnavailableError(f"opa: server at {self.url} is unreachable: {_short(exc)}") from exc
        except requests.RequestException as exc:
            raise PolicyEvaluationError(f"opa: request to {self.url} failed: {_short(exc)}") from exc
        except RegoParseError as exc:  # what the client raises for a rejected data upload
            raise PolicyEvaluationError(f"opa: {exc.expression}: {exc.message}") from exc
        except ValueError as exc:  # a body that is not JSON
            raise PolicyEvaluationError(f"opa: unreadable answer from {self.url}: {exc}") from exc


def _timed_out(exc: BaseException) -> bool:
    """The server accepted the request but did not answer in time (requests reports a read
    timeout after retries as a ConnectionError wrapping urllib3's ReadTimeoutError)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        if isinstance(e, urllib3.exceptions.ReadTimeoutError):  # not connect timeouts: those are "unreachable"
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
