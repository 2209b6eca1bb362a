"""OPA's compiled Wasm policy in this process: the ABI (``opa_eval``) over wasmtime's C API.

wasmtime's Python ``Func.__call__`` reads the function's type again and converts every
value on each call (~18 µs here), and an evaluation makes a few calls plus five per host
built-in; so exports are called through ``wasmtime_func_call_unchecked`` with their
argument slots laid out once, and host functions are ``wasmtime_func_new_unchecked``
callbacks. What OPA's ABI asks of the host: a memory, ``opa_abort`` (stop: a trap) and
``opa_builtin0..4`` for the built-ins the compiler did not put in the module.

Unlike rego-cpp, an evaluation here can be stopped: wasmtime counts the work it does
("fuel", ~8 % of an evaluation) and each evaluation gets ``FUEL_PER_EVALUATION``: past it,
the module traps and the caller gets an error, not a decision. (An epoch deadline would
bound time rather than work, but needs a thread that takes the GIL every tick to advance
the epoch; fuel needs nothing running beside the server, and a test of it cannot be
flaky.) Its memory is bounded too (``MAX_MEMORY_BYTES``), and given back after an
evaluation that needed much of it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from wasmtime import Config, Engine, FuncType, Limits, Linker, Memory, MemoryType, Module, Store, ValType
from wasmtime import _ffi as ffi
from wasmtime._func import Func

from webhook.engines.rego_value import parse_rego_value

_PAGE = 65536
# Work one evaluation may do (wasmtime's fuel, about one unit per instruction): the denied
# example needs 765,000 and the compliant one 470,000; 2,000,000,000 take ~0.5 s here.
FUEL_PER_EVALUATION = 2_000_000_000
# Linear memory per policy: an evaluation needing more is stopped (an error, so a deny).
# The default policies on a 3 MiB review need a few MiB; OPA frees nothing until the end.
MAX_MEMORY_BYTES = 256 * 1024 * 1024
# After an evaluation that left memory larger than this, the instance is made anew.
RESET_ABOVE_BYTES = 32 * 1024 * 1024
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()
HostBuiltin = Callable[[list[Any]], Any]


class WasmError(Exception):
    """The module aborted or trapped, or a host built-in failed: no decision."""


def _message(error: Any, read: Callable[[Any, Any], None], delete: Callable[[Any], None]) -> str:
    text = ffi.wasm_byte_vec_t()
    read(error, ctypes.byref(text))
    message = ctypes.string_at(text.data, text.size).decode(errors="replace")
    ffi.wasm_byte_vec_delete(ctypes.byref(text))
    delete(error)
    return message


class _Call:
    """One exported function, called through the unchecked C API (i32 arguments and result)."""

    def __init__(self, func: Func, arity: int) -> None:
        self._func = ctypes.byref(func._func)
        self._slots = (ffi.wasmtime_val_raw_t * max(arity, 1))()

    def __call__(self, context: Any, *args: int) -> int:
        slots = self._slots
        for i, value in enumerate(args):
            slots[i].i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call_unchecked(context, self._func, slots, len(slots), ctypes.byref(trap))
        if error:
            raise WasmError(_message(error, ffi.wasmtime_error_message, ffi.wasmtime_error_delete))
        if trap:
            raise WasmError(_message(trap, ffi.wasm_trap_message, ffi.wasm_trap_delete))
        return int(slots[0].i32)


class WasmPolicy:
    """A compiled policy with its data loaded; ``evaluate`` takes and returns JSON bytes.

    Not thread-safe (one store): the engine calls it under a lock."""

    EXPORTS: ClassVar[dict[str, int]] = {
        "opa_malloc": 1, "opa_json_parse": 2, "opa_json_dump": 1, "opa_value_dump": 1, "opa_heap_ptr_get": 0,
        "opa_heap_ptr_set": 1, "opa_eval": 7, "builtins": 0, "entrypoints": 0,
    }  # fmt: skip

    def __init__(
        self, wasm: bytes, data: bytes, builtins: dict[str, HostBuiltin], fuel: int = FUEL_PER_EVALUATION
    ) -> None:
        config = Config()
        config.consume_fuel = True
        self._engine = Engine(config)
        self._fuel = fuel
        self._data_json = data
        self._host = builtins
        self._failures: list[BaseException] = []
        try:
            self._module = Module(self._engine, wasm)
        except Exception as exc:  # wasmtime raises its own error types for invalid modules
            raise WasmError(f"not a Wasm module: {exc}") from None
        self._instantiate()

    def _instantiate(self) -> None:
        """A fresh store, memory and instance with the data loaded (again after a big evaluation:
        linear memory only grows, and dropping the store is how it goes back)."""
        self._store = Store(self._engine)
        self._store.set_fuel(self._fuel)  # instantiation runs the module's start code
        self._memory = Memory(self._store, MemoryType(Limits(5, MAX_MEMORY_BYTES // _PAGE)))
        self._callbacks: list[Any] = []  # the C callbacks must live as long as the store
        linker = Linker(self._engine)
        linker.define(self._store, "env", "memory", self._memory)
        self._define(linker, "opa_abort", 1, None, self._abort)
        self._define(linker, "opa_println", 1, None, lambda _slots: 0)
        for arity in range(5):
            self._define(linker, f"opa_builtin{arity}", arity + 2, ValType.i32(), self._builtin(arity))
        instance = linker.instantiate(self._store, self._module)
        exports = instance.exports(self._store)
        self._calls = {name: _Call(exports[name], arity) for name, arity in self.EXPORTS.items()}  # type: ignore[arg-type]
        self._context = self._store._context()
        ids: dict[str, int] = orjson.loads(self._dump_json(self._call("builtins")))
        missing = sorted(set(ids) - set(self._host))
        if missing:
            raise WasmError(
                f"the policies call built-in(s) {missing}, which the wasm engine does not provide "
                "(policy.engine embedded or opa runs them)"
            )
        self._builtins = {number: self._host[name] for name, number in ids.items()}
        # built-ins that must tell a set from an array take Rego's notation instead of JSON
        self._rego_valued = {
            number for number, builtin in self._builtins.items() if getattr(builtin, "rego_values", False)
        }
        self.entrypoints: dict[str, int] = orjson.loads(self._dump_json(self._call("entrypoints")))
        self._data = self._parse_json(self._data_json)
        self._heap = self._call("opa_heap_ptr_get")  # everything after it is per evaluation

    def evaluate(self, entrypoint: int, policy_input: bytes) -> bytes:
        """The result set as JSON (``[{"result": ...}]``, or ``[]`` when undefined)."""
        self._store.set_fuel(self._fuel)
        self._call("opa_heap_ptr_set", self._heap)
        address = self._heap
        needed = address + len(policy_input) + 64 * _PAGE
        size = self._memory.data_len(self._store)
        if needed > size:
            self._memory.grow(self._store, (needed - size) // _PAGE + 1)
        self._memory.write(self._store, policy_input, address)
        self._failures.clear()
        end = address + len(policy_input)
        trapped = False
        try:
            try:
                result = self._call("opa_eval", 0, entrypoint, self._data, address, len(policy_input), end, 0)
            except WasmError:
                trapped = True
                raise
            if self._failures:
                raise WasmError(self._failure_text("a built-in failed"))
            return ctypes.string_at(self._base() + result)
        except WasmError as exc:
            if "all fuel consumed" in str(exc):
                raise WasmError(f"the evaluation did more than {self._fuel:,} steps and was stopped") from None
            if self._memory.data_len(self._store) >= MAX_MEMORY_BYTES - 64 * _PAGE:
                raise WasmError(
                    f"the evaluation needed more than {MAX_MEMORY_BYTES >> 20} MiB and was stopped"
                ) from None
            raise WasmError(self._failure_text(str(exc))) from None
        finally:
            # A trap leaves the module's globals (its stack pointer among them) where it stopped:
            # start afresh rather than trust them. And linear memory only grows: a big evaluation's
            # memory goes back with the store.
            if trapped or self._memory.data_len(self._store) > RESET_ABOVE_BYTES:
                self._instantiate()

    def _failure_text(self, fallback: str) -> str:
        return str(self._failures[0]) if self._failures else fallback

    def _call(self, name: str, *args: int) -> int:
        return self._calls[name](self._context, *args)

    def _base(self) -> int:
        """Where linear memory starts now (it moves when it grows)."""
        return ctypes.addressof(self._memory.data_ptr(self._store).contents)

    def _dump_json(self, value: int) -> bytes:
        return ctypes.string_at(self._base() + self._call("opa_json_dump", value))

    def _dump_rego(self, value: int) -> str:
        return ctypes.string_at(self._base() + self._call("opa_value_dump", value)).decode()

    def _parse_json(self, raw: bytes) -> int:
        address = self._call("opa_malloc", len(raw))
        self._memory.write(self._store, raw, address)
        value = self._call("opa_json_parse", address, len(raw))
        if not value:
            raise WasmError("the policy could not parse a JSON document")
        return value

    def _abort(self, slots: Any) -> int:
        """``opa_abort(message)``: the module cannot go on; a trap ends the evaluation."""
        message = ctypes.string_at(self._base() + slots[0].i32).decode(errors="replace")
        self._failures.append(WasmError(f"the policy aborted: {message}"))
        text = message.encode()
        trap = ffi.wasmtime_trap_new(ctypes.c_char_p(text), len(text))
        return int(ctypes.cast(trap, ctypes.c_void_p).value or 0)

    def _builtin(self, arity: int) -> Callable[[Any], int]:
        """``opa_builtinN(id, context, arg1..N)``: a host built-in, JSON in and out. A failure is
        kept and reported once ``opa_eval`` returns (the module gets null meanwhile)."""

        def call(slots: Any) -> int:
            try:
                number = slots[0].i32
                if number in self._rego_valued:
                    args = [parse_rego_value(self._dump_rego(slots[2 + i].i32)) for i in range(arity)]
                else:
                    args = [orjson.loads(self._dump_json(slots[2 + i].i32)) for i in range(arity)]
                result = self._builtins[number](args)
                slots[0].i32 = self._parse_json(orjson.dumps(result))
            except Exception as exc:
                self._failures.append(exc)
                slots[0].i32 = self._parse_json(b"null")
            return 0

        return call

    def _define(
        self, linker: Linker, name: str, params: int, result: ValType | None, body: Callable[[Any], int]
    ) -> None:
        def callback(_env: Any, _caller: Any, slots: Any, _count: int) -> int:
            return body(slots) or 0

        c_callback = ffi.wasmtime_func_unchecked_callback_t(callback)
        self._callbacks.append(c_callback)
        ty = FuncType([ValType.i32()] * params, [] if result is None else [result])
        func = ffi.wasmtime_func_t()
        ffi.wasmtime_func_new_unchecked(
            self._store._context(), ty.ptr(), c_callback, None, _NO_FINALIZER, ctypes.byref(func)
        )
        linker.define(self._store, "env", name, Func._from_raw(func))
