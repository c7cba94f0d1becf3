"""Evaluate the dashboards' PromQL over recorded scrapes, the way Prometheus would, for the preview pictures.

The recordings (tests/chart/preview_data.py) hold every sample of every scrape of the real exporters. Here a
query is parsed with promql-parser and evaluated at each scrape time over those samples: instant selectors
see the series of the latest scrape at or before that time (a series gone from a scrape is stale, as in
Prometheus); range selectors see the samples inside the window. Supported, because the dashboards use them:
label matchers, sum/avg/min/max/count/quantile by/without, arithmetic and comparisons (filters and `bool`),
one-to-one and group_left matching with on/ignoring, and/or/unless, rate/increase (counter resets handled,
no extrapolation: the recordings are short), histogram_quantile, sort_desc, vector, scalar. Anything else
raises Unsupported, so a preview never shows a number the query would not give.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import promql_parser as pq

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]
Value = Vector | float
NAME = "__name__"


class Unsupported(ValueError):
    """A PromQL construct this evaluator does not implement."""


@dataclass
class Store:
    """The recorded samples: per source (scrape target), per scrape time and metric name, every series."""

    times: list[float]
    """Every scrape time of any source, in order."""
    scrapes: dict[str, tuple[list[float], list[dict[str, list[tuple[Labels, float]]]]]]
    """source → (its scrape times, what each scrape held by metric name)."""
    history: dict[Labels, tuple[list[float], list[float]]]
    names: dict[str, list[Labels]]

    @classmethod
    def from_scrapes(cls, scrapes: Iterable[tuple[float, str, list[tuple[str, dict[str, str], float]]]]) -> Store:
        by_source: dict[str, tuple[list[float], list[dict[str, list[tuple[Labels, float]]]]]] = {}
        history: dict[Labels, tuple[list[float], list[float]]] = {}
        names: dict[str, list[Labels]] = defaultdict(list)
        for t, source, samples in sorted(scrapes, key=lambda s: s[0]):
            times, contents = by_source.setdefault(source, ([], []))
            scrape: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
            times.append(t)
            contents.append(scrape)
            for name, labels, value in samples:
                key = frozenset({**labels, NAME: name}.items())
                scrape[name].append((key, value))
                if key not in history:
                    history[key] = ([], [])
                    names[name].append(key)
                ts, vs = history[key]
                ts.append(t)
                vs.append(value)
        times = sorted({t for ts, _ in by_source.values() for t in ts})
        return cls(times, by_source, history, dict(names))

    def instant(self, t: float, name: str) -> list[tuple[Labels, float]]:
        """The series of each source's latest scrape at or before t: a series missing from it is stale."""
        out: list[tuple[Labels, float]] = []
        for times, contents in self.scrapes.values():
            i = bisect.bisect_right(times, t) - 1
            if i >= 0:
                out += contents[i].get(name, [])
        return out

    def window(self, key: Labels, t: float, seconds: float) -> tuple[list[float], list[float]]:
        ts, vs = self.history[key]
        lo, hi = bisect.bisect_right(ts, t - seconds), bisect.bisect_right(ts, t)
        return ts[lo:hi], vs[lo:hi]


def _matches(labels: Labels, matchers: Any) -> bool:
    got = dict(labels)
    for m in matchers.matchers:
        value, op = got.get(m.name, ""), str(m.op)
        if op.endswith("Equal") and not op.endswith("NotEqual"):
            ok = value == m.value
        elif op.endswith("NotEqual"):
            ok = value != m.value
        elif op.endswith("NotRe"):
            ok = re.fullmatch(m.value, value) is None
        elif op.endswith("Re"):
            ok = re.fullmatch(m.value, value) is not None
        else:
            raise Unsupported(f"label matcher {op}")
        if not ok:
            return False
    return True


def _name(selector: Any) -> str:
    if selector.name is None:
        raise Unsupported("a selector without a metric name")
    return str(selector.name)


def _selects(labels: Labels, selector: Any) -> bool:
    if selector.matchers.or_matchers:
        raise Unsupported("'or' label matchers")
    return (selector.name is None or (NAME, selector.name) in labels) and _matches(labels, selector.matchers)


def _drop_name(labels: Labels) -> Labels:
    return frozenset((k, v) for k, v in labels if k != NAME)


def _increase(ts: list[float], vs: list[float]) -> float | None:
    if len(vs) < 2:
        return None
    total = 0.0
    for prev, cur in itertools.pairwise(vs):
        total += cur - prev if cur >= prev else cur  # a counter reset starts again from 0
    return total


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a)),
    "%": lambda a, b: math.fmod(a, b) if b else math.nan,
    "^": operator.pow,
}
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


class Evaluator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._parsed: dict[str, Any] = {}

    def query(self, expr: str, t: float) -> Value:
        node = self._parsed.get(expr)
        if node is None:
            node = self._parsed[expr] = pq.parse(expr)
        return self._eval(node, t)

    def _eval(self, node: Any, t: float) -> Value:
        kind = type(node).__name__
        if kind == "NumberLiteral":
            return float(node.val)
        if kind == "ParenExpr":
            return self._eval(node.expr, t)
        if kind == "UnaryExpr":
            value = self._eval(node.expr, t)
            return -value if isinstance(value, float) else {_drop_name(k): -v for k, v in value.items()}
        if kind == "VectorSelector":
            return {k: v for k, v in self.store.instant(t, _name(node)) if _selects(k, node)}
        if kind == "AggregateExpr":
            return self._aggregate(node, t)
        if kind == "BinaryExpr":
            return self._binary(node, t)
        if kind == "Call":
            return self._call(node, t)
        raise Unsupported(kind)

    def _range(self, node: Any, t: float) -> dict[Labels, tuple[list[float], list[float]]]:
        if type(node).__name__ != "MatrixSelector":
            raise Unsupported("a range function over something other than a range selector")
        seconds = node.range.total_seconds()
        selector = node.vector_selector
        return {
            key: self.store.window(key, t, seconds)
            for key in self.store.names.get(_name(selector), [])
            if _selects(key, selector)
        }

    def _call(self, node: Any, t: float) -> Value:
        name, args = node.func.name, list(node.args)
        if name in ("rate", "increase"):
            out: Vector = {}
            for key, (ts, vs) in self._range(args[0], t).items():
                grown = _increase(ts, vs)
                if grown is None:
                    continue
                out[_drop_name(key)] = grown / (ts[-1] - ts[0]) if name == "rate" else grown
            return out
        if name == "vector":
            scalar = self._eval(args[0], t)
            return {frozenset(): float(scalar)} if isinstance(scalar, float) else scalar
        if name == "scalar":
            vec = self._vector(args[0], t)
            return next(iter(vec.values())) if len(vec) == 1 else math.nan
        if name == "sort_desc":
            vec = self._vector(args[0], t)
            return dict(sorted(vec.items(), key=lambda kv: -kv[1]))
        if name == "histogram_quantile":
            return self._histogram_quantile(float(self._eval(args[0], t)), self._vector(args[1], t))  # type: ignore[arg-type]
        raise Unsupported(f"function {name}()")

    def _vector(self, node: Any, t: float) -> Vector:
        value = self._eval(node, t)
        if isinstance(value, float):
            raise Unsupported("a scalar where a vector is needed")
        return value

    @staticmethod
    def _histogram_quantile(q: float, buckets: Vector) -> Vector:
        groups: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
        for key, count in buckets.items():
            labels = dict(key)
            le = labels.pop("le", None)
            if le is None:
                continue
            labels.pop(NAME, None)
            groups[frozenset(labels.items())].append((float(le), count))
        out: Vector = {}
        for key, pairs in groups.items():
            pairs.sort()
            total = pairs[-1][1]
            if total == 0 or pairs[-1][0] != math.inf:
                continue
            rank = q * total
            lower, below = 0.0, 0.0
            for upper, count in pairs:
                if count >= rank:
                    if upper == math.inf:
                        out[key] = lower  # the quantile is past the last finite bucket
                    else:
                        width = count - below
                        out[key] = lower + (upper - lower) * ((rank - below) / width if width else 0.0)
                    break
                lower, below = upper, count
        return out

    def _aggregate(self, node: Any, t: float) -> Vector:
        op = str(node.op)
        vec = self._vector(node.expr, t)
        modifier = node.modifier
        groups: dict[Labels, list[float]] = defaultdict(list)
        for key, value in vec.items():
            if modifier is None:
                group: Labels = frozenset()
            elif str(modifier.type).endswith("By"):
                group = frozenset((k, v) for k, v in key if k in modifier.labels)
            else:
                group = frozenset((k, v) for k, v in key if k not in modifier.labels and k != NAME)
            groups[group].append(value)
        reduce: Callable[[list[float]], float]
        if op == "sum":
            reduce = sum
        elif op == "avg":
            reduce = lambda xs: sum(xs) / len(xs)  # noqa: E731
        elif op == "min":
            reduce = min
        elif op == "max":
            reduce = max
        elif op == "count":
            reduce = len
        elif op == "quantile":
            q = float(self._eval(node.param, t))  # type: ignore[arg-type]
            reduce = lambda xs: _quantile(q, xs)  # noqa: E731
        else:
            raise Unsupported(f"aggregation {op}")
        return {group: float(reduce(values)) for group, values in groups.items()}

    def _binary(self, node: Any, t: float) -> Value:
        op = str(node.op)
        modifier = node.modifier
        lhs, rhs = self._eval(node.lhs, t), self._eval(node.rhs, t)
        keep_bool = bool(modifier and modifier.return_bool)
        if op in ("and", "or", "unless"):
            if isinstance(lhs, float) or isinstance(rhs, float):
                raise Unsupported(f"'{op}' with a scalar")
            return self._set_op(op, lhs, rhs, modifier)
        if isinstance(lhs, float) and isinstance(rhs, float):
            if op in COMPARISON:
                return float(COMPARISON[op](lhs, rhs))
            return ARITHMETIC[op](lhs, rhs)
        if isinstance(lhs, float) or isinstance(rhs, float):
            out: Vector = {}
            vec, scalar_left = (rhs, True) if isinstance(lhs, float) else (lhs, False)
            scalar = lhs if isinstance(lhs, float) else rhs
            assert isinstance(vec, dict)
            assert isinstance(scalar, float)
            for key, value in vec.items():
                a, b = (scalar, value) if scalar_left else (value, scalar)
                if op in COMPARISON:
                    hit = COMPARISON[op](a, b)
                    if keep_bool:
                        out[_drop_name(key)] = float(hit)
                    elif hit:
                        out[key] = value
                else:
                    out[_drop_name(key)] = ARITHMETIC[op](a, b)
            return out
        return self._vector_match(op, lhs, rhs, modifier, keep_bool)

    @staticmethod
    def _signature(key: Labels, modifier: Any) -> Labels:
        matching = modifier.matching if modifier is not None else None
        if matching is None:
            return _drop_name(key)
        if str(matching.type).endswith("Include"):
            return frozenset((k, v) for k, v in key if k in matching.labels)
        return frozenset((k, v) for k, v in key if k not in matching.labels and k != NAME)

    def _set_op(self, op: str, lhs: Vector, rhs: Vector, modifier: Any) -> Vector:
        right = {self._signature(k, modifier) for k in rhs}
        if op == "and":
            return {k: v for k, v in lhs.items() if self._signature(k, modifier) in right}
        if op == "unless":
            return {k: v for k, v in lhs.items() if self._signature(k, modifier) not in right}
        left = {self._signature(k, modifier) for k in lhs}
        return {**lhs, **{k: v for k, v in rhs.items() if self._signature(k, modifier) not in left}}

    def _vector_match(self, op: str, lhs: Vector, rhs: Vector, modifier: Any, keep_bool: bool) -> Vector:
        card = str(modifier.card) if modifier is not None else "OneToOne"
        if card.endswith("OneToMany"):
            raise Unsupported("group_right")
        extra = list(modifier.group_labels or []) if modifier is not None else []
        by_sig: dict[Labels, list[tuple[Labels, float]]] = defaultdict(list)
        for key, value in rhs.items():
            by_sig[self._signature(key, modifier)].append((key, value))
        out: Vector = {}
        for key, a in lhs.items():
            found = by_sig.get(self._signature(key, modifier))
            if not found:
                continue
            if len(found) > 1:
                raise Unsupported(f"many matches on the right of '{op}' (Prometheus would refuse the query)")
            right_key, b = found[0]
            result_key = self._result_labels(key, right_key, op, modifier, keep_bool, card, extra)
            if op in COMPARISON:
                hit = COMPARISON[op](a, b)
                if keep_bool:
                    out[result_key] = float(hit)
                elif hit:
                    out[result_key] = a
            else:
                out[result_key] = ARITHMETIC[op](a, b)
        return out

    @staticmethod
    def _result_labels(
        left: Labels, right: Labels, op: str, modifier: Any, keep_bool: bool, card: str, extra: list[str]
    ) -> Labels:
        """Prometheus's result metric: no name after arithmetic; one-to-one keeps the `on` labels (or drops the
        `ignoring` ones); group_left copies its extra labels from the right side."""
        labels = dict(left)
        if op not in COMPARISON or keep_bool:
            labels.pop(NAME, None)
        matching = modifier.matching if modifier is not None else None
        if card.endswith("OneToOne") and matching is not None:
            if str(matching.type).endswith("Include"):
                labels = {k: v for k, v in labels.items() if k in matching.labels}
            else:
                labels = {k: v for k, v in labels.items() if k not in matching.labels}
        if card.endswith("ManyToOne"):
            theirs = dict(right)
            for name in extra:
                if name in theirs:
                    labels[name] = theirs[name]
                else:
                    labels.pop(name, None)
        return frozenset(labels.items())


def _quantile(q: float, values: list[float]) -> float:
    ordered = sorted(values)
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * (len(ordered) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
