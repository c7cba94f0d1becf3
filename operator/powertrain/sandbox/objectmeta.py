"""ObjectMeta rules the API server checks on every kind (apimachinery's ValidateObjectMeta), with its messages.

[Labels and Selectors: "Syntax and character set"] a label key is an optional DNS-subdomain prefix and `/`
and a name of at most 63 characters (alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric); a value
is empty or at most 63 such characters. [Annotations: "Syntax and character set"] keys follow the label key
rules; keys and values together may hold at most 256 KiB.
"""

from __future__ import annotations

import json
import re
from typing import Any

Cause = dict[str, str]

TOTAL_ANNOTATION_BYTES = 256 * 1024
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_SUBDOMAIN_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(f"^{_DNS1123_LABEL_FMT}$")


def go_quote(value: Any) -> str:
    """A value as field.Invalid prints it: strings quoted (Go %q), numbers and booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError wording, examples and all (its odd double spaces included)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def invalid(field: str, value: Any, detail: str) -> Cause:
    return {"reason": "FieldValueInvalid", "field": field, "message": f"Invalid value: {go_quote(value)}: {detail}"}


def dns1123_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.match(value):
        errs.append(
            regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                "start and end with an alphanumeric character",
                _DNS1123_LABEL_FMT,
                "my-name",
                "123-abc",
            )
        )
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(
            regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN_FMT,
                "example.com",
            )
        )
    return errs


def _qualified_name_format() -> str:
    return regex_error(
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character",
        _QUALIFIED_NAME_FMT,
        "MyName",
        "my.name",
        "123-abc",
    )


def qualified_name_errors(value: str) -> list[str]:
    """IsQualifiedName: what a label key (and an annotation key) must be."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend(f"prefix part {m}" for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + _qualified_name_format()
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append(f"name part {max_len_error(63)}")
    if not _QUALIFIED_NAME.match(name):
        errs.append(
            "name part "
            + _qualified_name_format()
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.match(value):
        errs.append(
            regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character",
                _LABEL_VALUE_FMT,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errs


def label_errors(labels: dict[str, str], field: str = "metadata.labels") -> list[Cause]:
    causes: list[Cause] = []
    for k, v in labels.items():
        causes.extend(invalid(field, k, m) for m in qualified_name_errors(k))
        causes.extend(invalid(field, v, m) for m in label_value_errors(v))
    return causes


def annotation_errors(annotations: dict[str, str], field: str = "metadata.annotations") -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    for k, v in annotations.items():
        causes.extend(invalid(field, k, m) for m in qualified_name_errors(k.lower()))
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_BYTES:
        causes.append(
            {
                "reason": "FieldValueTooLong",
                "field": field,
                "message": f"Too long: must have at most {TOTAL_ANNOTATION_BYTES} bytes",
            }
        )
    return causes
