"""Settings of the policy stage (the operator's, from the environment) and the engine factory.

``engine.settings.Settings`` has no policy fields yet, so this plugin declares its own
typed settings with the same ``LINTAS_`` prefix:

========================  ====================================================  =========
variable                  meaning                                               default
========================  ====================================================  =========
``LINTAS_OPA_URL``        use this OPA server (``http(s)://host:port``)         embedded regorus
``LINTAS_OPA_TOKEN``      bearer token for it                                   none
``LINTAS_OPA_TIMEOUT_S``  per-request timeout                                   5
``LINTAS_POLICY_TIMEOUT_S``  whole evaluation (regorus: the child is killed)    10
``LINTAS_POLICY_MEMORY_MB``  memory cap of the regorus child                    2048
``LINTAS_POLICY_DATA``    JSON/YAML file merged over ``policies/data.json``     none
``LINTAS_POLICY_BUILTIN_DIR``  the built-in library                             Lintas's ``policies/``
========================  ====================================================  =========
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lintas.workers.policy.engine import PolicyEngine
from lintas.workers.policy.library import BUILTIN_DIR, builtin_data, data_document, merge, operator_data
from lintas.workers.policy.opa_backend import OpaEngine
from lintas.workers.policy.regorus_backend import RegorusEngine


class PolicySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINTAS_", extra="ignore")

    opa_url: str | None = None
    opa_token: SecretStr | None = None
    opa_timeout_s: float = Field(5.0, gt=0)
    policy_timeout_s: float = Field(10.0, gt=0)
    policy_memory_mb: int = Field(2048, ge=256)
    policy_data: Path | None = None
    policy_builtin_dir: Path = BUILTIN_DIR
    policy_isolated: bool = True  # run regorus in a child process (only tests turn this off)

    def engine(self) -> PolicyEngine:
        if self.opa_url:
            token = self.opa_token.get_secret_value() if self.opa_token else None
            return OpaEngine(self.opa_url, token=token, timeout_s=self.opa_timeout_s)
        return RegorusEngine(
            timeout_s=self.policy_timeout_s, isolated=self.policy_isolated, memory_mb=self.policy_memory_mb
        )

    def data(self) -> dict[str, Any]:
        """The whole data document: ``{"lintas": {"config": defaults + operator file}}``."""
        return data_document(merge(builtin_data(self.policy_builtin_dir), operator_data(self.policy_data)))

    @property
    def backend_name(self) -> str:
        return "opa" if self.opa_url else "regorus"
