"""An OpenFeature provider (``openfeature-sdk``) over :class:`BuntingClient`.

>>> from openfeature import api                               # doctest: +SKIP
>>> from bunting import BuntingClient, BuntingProvider
>>> provider = BuntingProvider(BuntingClient.edge("https://flags.example.com", "srv-…"))
>>> api.set_provider_and_wait(provider)  # initialize() fetches the first snapshot
>>> api.get_client().get_boolean_value("new-checkout", False)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode, ProviderFatalError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata, ProviderStatus
from openfeature.track import TrackingEventDetails

from .client import BuntingClient, ExpectedType
from .errors import BuntingError, NotReady

T = TypeVar("T")

_ERROR_CODES = {code.value: code for code in ErrorCode}


def to_engine_context(ctx: EvaluationContext | None) -> dict[str, Any]:
    """OpenFeature context -> engine context: every attribute as JSON plus
    ``targetingKey`` (the context's targeting key wins over an attribute)."""
    if ctx is None:
        return {}
    out: dict[str, Any] = dict(ctx.attributes)
    if ctx.targeting_key is not None:
        out["targetingKey"] = ctx.targeting_key
    return out


class BuntingProvider(AbstractProvider):
    """Evaluates with the embedded engine; see :class:`BuntingClient` for
    sources, refresh and exposures. ``initialize`` starts the client (raises
    ProviderFatalError when no snapshot could be loaded from the source nor
    the bootstrap file); ``shutdown`` closes it (flushing exposures)."""

    def __init__(self, client: BuntingClient) -> None:
        super().__init__()
        self.client = client
        client.add_listener(self._on_client_event)

    def get_metadata(self) -> Metadata:
        return Metadata(name="bunting")

    # -- lifecycle ---------------------------------------------------------

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if not self.client.start():
            raise ProviderFatalError(
                f"bunting: no snapshot loaded: {self.client.status().last_error}"
            )
        if self.client.status().status == "stale":
            # The SDK emits READY when initialize() returns; STALE must follow it.
            threading.Thread(target=self._stale_after_ready, daemon=True).start()

    def _stale_after_ready(self) -> None:
        try:
            from openfeature.provider._registry import provider_registry
        except ImportError:  # pragma: no cover - SDK internals moved
            time.sleep(0.05)
        else:
            deadline = time.monotonic() + 2.0
            while (
                provider_registry.get_provider_status(self) != ProviderStatus.READY
                and time.monotonic() < deadline
            ):
                time.sleep(0.002)
        if self.client.status().status == "stale":
            msg = self.client.status().last_error or "serving the bootstrap snapshot"
            self.emit_provider_stale(ProviderEventDetails(message=msg))

    def shutdown(self) -> None:
        self.client.close()

    def _on_client_event(self, event: str, details: dict[str, Any]) -> None:
        message = details.get("message")
        if event == "ready":
            self.emit_provider_ready(ProviderEventDetails(message=message))
        elif event == "stale":
            self.emit_provider_stale(ProviderEventDetails(message=message))
        elif event == "error":
            self.emit_provider_error(
                ProviderEventDetails(message=message, error_code=ErrorCode.GENERAL)
            )
        elif event == "configuration_changed":
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=list(details.get("flags_changed", [])))
            )

    # -- resolution --------------------------------------------------------

    def _resolve(
        self,
        flag_key: str,
        default_value: Any,
        ctx: EvaluationContext | None,
        expected: ExpectedType,
        convert: Any = None,
    ) -> FlagResolutionDetails[Any]:
        try:
            r = self.client.evaluate(flag_key, to_engine_context(ctx), expected_type=expected)
        except BuntingError as e:
            code = ErrorCode.PROVIDER_NOT_READY if isinstance(e, NotReady) else ErrorCode.GENERAL
            return FlagResolutionDetails(
                value=default_value, reason=Reason.ERROR, error_code=code, error_message=str(e)
            )
        metadata = r.get("metadata") or {}
        code = r.get("errorCode")
        if code is not None:
            return FlagResolutionDetails(
                value=default_value,
                reason=r.get("reason", Reason.ERROR),
                error_code=_ERROR_CODES.get(code, ErrorCode.GENERAL),
                error_message=r.get("errorMessage"),
                flag_metadata=metadata,
            )
        value = r.get("value")
        if convert is not None:
            value = convert(value)
        return FlagResolutionDetails(
            value=value,
            reason=r.get("reason"),
            variant=r.get("variant"),
            flag_metadata=metadata,
        )

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        d = self._resolve(flag_key, default_value, evaluation_context, "number")
        if d.error_code is None and isinstance(d.value, float):
            if d.value.is_integer():
                d.value = int(d.value)
            else:
                return FlagResolutionDetails(
                    value=default_value,
                    reason=Reason.ERROR,
                    error_code=ErrorCode.TYPE_MISMATCH,
                    error_message=f"flag {flag_key!r} served {d.value}, not an integer",
                    flag_metadata=d.flag_metadata,
                )
        return d

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(
            flag_key,
            default_value,
            evaluation_context,
            "number",
            lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v,
        )

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, "object")

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """Forwards to :meth:`BuntingClient.track` (value = the details' value).
        Never raises: a bad name or missing targeting key is logged."""
        value = tracking_event_details.value if tracking_event_details else None
        try:
            self.client.track(tracking_event_name, to_engine_context(evaluation_context), value)
        except (BuntingError, ValueError) as e:
            import logging

            logging.getLogger("bunting").warning("bunting: track dropped: %s", e)
