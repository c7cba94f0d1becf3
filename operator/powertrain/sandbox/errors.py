"""API errors as Kubernetes `Status` objects (API concepts: "Responses" / metav1.Status reasons and codes)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the server answers with a `Status` object; raising it never changes the store."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 300 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        out["details"] = details
    return out


def _details(kind: str, name: str, group: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        out["group"] = group
    return out


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(404, "NotFound", f'{res} "{name}" not found', details=_details(plural, name, group))


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(409, "AlreadyExists", f'{res} "{name}" already exists', details=_details(plural, name, group))


def conflict(plural: str, name: str, group: str = "", why: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res} "{name}": {why}',
        details=_details(plural, name, group),
    )


def invalid(kind: str, name: str, group: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid; each cause is {field, message, reason} as the real server's field.Error renders it."""
    # As apimachinery's error aggregate prints a list: duplicates once, ", " between, brackets around several.
    lines = list(dict.fromkeys(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes))
    text = ", ".join(lines)
    if len(lines) > 1:
        text = f"[{text}]"
    details = _details(kind, name, group)
    details["causes"] = causes
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details=details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}")


def unknown_resource() -> ApiError:
    """A resource no served group-version has: what the real server's route dispatcher answers (a generic 404
    wrapping its router's own message), which kubectl prints as "the server could not find the requested resource"."""
    return ApiError(
        404,
        "NotFound",
        "the server could not find the requested resource",
        details={"causes": [{"reason": "UnexpectedServerResponse", "message": "404: Page Not Found"}]},
    )
