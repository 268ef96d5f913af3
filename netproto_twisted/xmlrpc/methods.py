"""What an XML-RPC server exposes: functions and instances by name, with introspection.

:class:`MethodRegistry` plays the role of the stdlib's
``SimpleXMLRPCDispatcher``: :meth:`~MethodRegistry.register_function` (also a
decorator), :meth:`~MethodRegistry.register_instance` (dotted names only when
asked for; names starting with ``_`` are never reachable), and the
``system.listMethods`` / ``methodHelp`` / ``methodSignature`` introspection
functions.  A function may return a value, a Deferred or a coroutine; one
marked with :func:`blocking` runs in a thread pool.
"""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

__all__ = ["BLOCKING_ATTRIBUTE", "Method", "MethodRegistry", "blocking"]

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute :func:`blocking` sets on a function.
BLOCKING_ATTRIBUTE = "__netproto_blocking__"
#: What ``system.methodSignature`` answers for a method registered without signatures.
NO_SIGNATURE = "signatures not supported"
#: Instance methods remembered after their first lookup.
_MAX_FOUND = 1024


def blocking(func: F) -> F:
    """Mark ``func`` as blocking: the server calls it in its thread pool, not on the reactor."""
    setattr(func, BLOCKING_ATTRIBUTE, True)
    return func


def _bindable(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Method:
    """One callable method: the function, whether it blocks, and its declared signatures."""

    name: str
    func: Callable[..., Any]
    blocking: bool
    signatures: tuple[tuple[str, ...], ...] | None = None
    signature: inspect.Signature | None = None

    def check_params(self, params: tuple[Any, ...]) -> str | None:
        """Return why ``params`` do not fit the function (``None`` when they do, or unknown)."""
        if self.signature is None:
            return None
        try:
            self.signature.bind(*params)
        except TypeError as e:
            return str(e)
        return None

    def help(self) -> str:
        """The method's documentation (its docstring, dedented)."""
        return pydoc.getdoc(self.func)


def _method(name: str, func: Callable[..., Any], signatures: Any = None) -> Method:
    return Method(
        name=name,
        func=func,
        blocking=bool(getattr(func, BLOCKING_ATTRIBUTE, False)),
        signatures=tuple(tuple(s) for s in signatures) if signatures else None,
        signature=_bindable(func),
    )


class MethodRegistry:
    """The methods an XML-RPC server can call, by name."""

    def __init__(self, *, introspection: bool = True, multicall: bool = True) -> None:
        self._methods: dict[str, Method] = {}
        self._instance: object | None = None
        self._allow_dotted_names = False
        self._found: dict[str, Method] = {}
        self._system: dict[str, Method] = {}
        #: Whether ``system.multicall`` is offered (the resource implements it).
        self.multicall = multicall
        if introspection:
            for name, func in (
                ("system.listMethods", self.list_methods),
                ("system.methodHelp", self.method_help),
                ("system.methodSignature", self.method_signature),
            ):
                self._system[name] = _method(name, func, [["array"]] if "list" in name else None)

    @overload
    def register_function(
        self, func: F, name: str | None = None, *, signatures: Any = None
    ) -> F: ...

    @overload
    def register_function(
        self, func: None = None, name: str | None = None, *, signatures: Any = None
    ) -> Callable[[F], F]: ...

    def register_function(
        self,
        func: F | None = None,
        name: str | None = None,
        *,
        signatures: Any = None,
    ) -> F | Callable[[F], F]:
        """Register ``func`` under ``name`` (default its ``__name__``); usable as a decorator.

        ``signatures``, a list of ``[return type, param type...]`` lists, is
        what ``system.methodSignature`` answers.
        """
        if func is None:

            def decorate(f: F) -> F:
                self.register_function(f, name, signatures=signatures)
                return f

            return decorate
        key = name if name is not None else func.__name__
        self._methods[key] = _method(key, func, signatures)
        return func

    def register_instance(self, instance: object, allow_dotted_names: bool = False) -> None:
        """Expose ``instance``'s public methods (``_dispatch``/``_listMethods`` as in the stdlib).

        With ``allow_dotted_names``, ``a.b`` reaches ``instance.a.b``: only
        for objects whose every public attribute chain is meant to be
        callable remotely.
        """
        self._instance = instance
        self._allow_dotted_names = allow_dotted_names
        self._found.clear()

    def register_module(self, module: Any) -> None:
        """Register every public function defined in ``module``."""
        for name, value in vars(module).items():
            if (
                not name.startswith("_")
                and inspect.isfunction(value)
                and value.__module__ == module.__name__
            ):
                self.register_function(value, name)

    def lookup(self, name: str) -> Method | None:
        """Return the method called ``name``, or ``None``."""
        method = self._methods.get(name)
        if method is not None:
            return method
        method = self._system.get(name)
        if method is not None:
            return method
        instance = self._instance
        if instance is None:
            return None
        dispatch = getattr(instance, "_dispatch", None)
        if dispatch is not None:
            return Method(name, lambda *params: dispatch(name, params), False)
        method = self._found.get(name)
        if method is not None:
            return method
        func = _resolve(instance, name, self._allow_dotted_names)
        if func is None:
            return None
        method = _method(name, func)
        if len(self._found) < _MAX_FOUND:
            self._found[name] = method
        return method

    def list_methods(self) -> list[str]:
        """Return the names of every method, sorted (``system.listMethods``)."""
        names = set(self._methods) | set(self._system)
        if self.multicall and self._system:
            names.add("system.multicall")
        instance = self._instance
        if instance is not None:
            listed = getattr(instance, "_listMethods", None)
            if listed is not None:
                names.update(listed())
            elif getattr(instance, "_dispatch", None) is None:
                names.update(
                    n
                    for n in dir(instance)
                    if not n.startswith("_") and callable(getattr(instance, n, None))
                )
        return sorted(names)

    def method_help(self, name: str) -> str:
        """Return the documentation of ``name`` (``system.methodHelp``)."""
        instance = self._instance
        if name not in self._methods and instance is not None:
            helper = getattr(instance, "_methodHelp", None)
            if helper is not None:
                return str(helper(name))
        if name == "system.multicall":
            return "Call several methods in one request: a list of {methodName, params} structs."
        method = self.lookup(name)
        return "" if method is None else method.help()

    def method_signature(self, name: str) -> list[list[str]] | str:
        """Return the declared signatures of ``name`` (``system.methodSignature``)."""
        method = self.lookup(name)
        if method is None or method.signatures is None:
            return NO_SIGNATURE
        return [list(s) for s in method.signatures]


def _resolve(instance: object, name: str, allow_dotted_names: bool) -> Callable[..., Any] | None:
    parts = name.split(".") if allow_dotted_names else [name]
    obj: Any = instance
    for part in parts:
        if not part or part.startswith("_"):
            return None
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if callable(obj) else None
