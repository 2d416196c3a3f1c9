"""Tests for tools/sbpf_link.py: clang-19 BPF objects -> SBPFv0 .so loaded by LiteSVM."""

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tools.sbpf_link import KNOWN_SYSCALLS, LinkError, link

if shutil.which("clang-19") is None:
    pytest.skip("clang-19 is not on PATH: cannot compile BPF test programs", allow_module_level=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
CFLAGS = ["-target", "bpfel", "-mcpu=v2", "-O2", "-ffreestanding", "-fno-builtin", "-mllvm", "-bpf-stack-size=4096"]
PRELUDE = """
typedef unsigned long uint64_t;
typedef unsigned char uint8_t;
void sol_log_(const char *message, uint64_t len);
void sol_log_64_(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
/* Input layout with no accounts: u64 account count, u64 data length, data. */
#define INSTRUCTION_DATA(input) ((input) + 16)
"""

# Logs a .rodata string, calls a non-static function (a relocated call) and
# indexes a .rodata table with instruction data so the lookup is not folded.
HELLO = (
    PRELUDE
    + """
static const uint64_t table[4] = {11, 22, 33, 44};
__attribute__((noinline)) uint64_t lookup(uint64_t i) { return table[i & 3]; }
uint64_t entrypoint(const uint8_t *input) {
  sol_log_("hello from rodata", 17);
  uint64_t value = lookup(INSTRUCTION_DATA(input)[0]);
  sol_log_64_(value, 0, 0, 0, 0);
  return value == 33 ? 0 : 1000 + value;
}
"""
)
CUSTOM_ERROR = PRELUDE + "uint64_t entrypoint(const uint8_t *input) { return 6000; }\n"

# ELF layout used to inspect the output independently of the tool.
EHDR_FMT = "<16sHHIQQQIHHHHHH"
SHDR_FMT = "<IIQQQQIIQQ"
SHF_ALLOC = 0x2


@pytest.fixture
def compile_c(tmp_path):
    """compile_c(source, *extra_flags) -> bytes of the relocatable object."""

    def compile_(source: str, *extra: str) -> bytes:
        src, obj = tmp_path / "prog.c", tmp_path / "prog.o"
        src.write_text(source)
        subprocess.run(["clang-19", *CFLAGS, *extra, "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
        return obj.read_bytes()

    return compile_


def run_program(so: bytes, data: bytes):
    """Load the .so into a fresh LiteSVM and send one instruction to it."""
    from solders.instruction import Instruction
    from solders.keypair import Keypair
    from solders.litesvm import LiteSVM
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.transaction import Transaction

    svm, program_id, payer = LiteSVM(), Pubkey.new_unique(), Keypair()
    svm.add_program(program_id, so)
    svm.airdrop(payer.pubkey(), 1_000_000_000)
    message = Message([Instruction(program_id, data, [])], payer.pubkey())
    return svm.send_transaction(Transaction([payer], message, svm.latest_blockhash()))


def custom_error(result):
    from solders.transaction_status import InstructionErrorCustom

    err = result.err()
    assert err.index == 0 and isinstance(err.err, InstructionErrorCustom), err
    return err.err.code


def read_sections(elf: bytes) -> dict:
    """{name: (type, flags, addr, offset, size)} from the section header table."""
    header = struct.unpack_from(EHDR_FMT, elf)
    shoff, shnum, shstrndx = header[6], header[12], header[13]
    headers = [struct.unpack_from(SHDR_FMT, elf, shoff + i * 64) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    sections = {}
    for name, typ, flags, addr, offset, size, *_ in headers[1:]:
        start = names_offset + name
        sections[elf[start : elf.index(b"\0", start)].decode()] = (typ, flags, addr, offset, size)
    return sections


# --- programs that link and run ---------------------------------------------


def test_program_with_rodata_syscalls_and_calls_runs(compile_c):
    so = link(compile_c(HELLO))
    result = run_program(so, bytes([2]))
    assert not hasattr(result, "err"), result
    logs = result.logs()
    assert "Program log: hello from rodata" in logs
    assert "Program log: 0x21, 0x0, 0x0, 0x0, 0x0" in logs  # table[2] == 33
    assert logs[-1].endswith("success")


def test_rodata_table_lookup_uses_instruction_data(compile_c):
    so = link(compile_c(HELLO))
    assert custom_error(run_program(so, bytes([1]))) == 1022  # 1000 + table[1]


def test_custom_error_code(compile_c):
    so = link(compile_c(CUSTOM_ERROR))
    assert custom_error(run_program(so, b"")) == 6000


def test_custom_entry_symbol(compile_c):
    obj = compile_c(PRELUDE + "uint64_t start(const uint8_t *input) { return 6000; }\n")
    assert custom_error(run_program(link(obj, entry_symbol="start"), b"")) == 6000


def test_output_is_deterministic(compile_c):
    obj = compile_c(HELLO)
    assert link(obj) == link(bytes(obj))


def test_output_headers(compile_c):
    so = link(compile_c(HELLO))
    ident, e_type, e_machine, _, e_entry, _, _, e_flags, *_ = struct.unpack_from(EHDR_FMT, so)
    assert ident[:4] == b"\x7fELF" and ident[4] == 2 and ident[5] == 1 and ident[7] == 0
    assert (e_type, e_machine, e_flags) == (3, 247, 0)
    sections = read_sections(so)
    assert {".text", ".rodata", ".dynamic", ".dynsym", ".dynstr", ".rel.dyn", ".shstrtab"} == set(sections)
    _, _, text_addr, text_offset, text_size = sections[".text"]
    assert text_addr == text_offset
    assert text_addr <= e_entry < text_addr + text_size
    for name, (_, flags, addr, offset, _) in sections.items():
        if flags & SHF_ALLOC:
            assert addr == offset, name


def test_known_syscalls_cover_the_common_ones():
    assert {"sol_log_", "sol_invoke_signed_c", "sol_memcpy_", "abort"} <= KNOWN_SYSCALLS
    assert "memcpy" not in KNOWN_SYSCALLS


# --- refusals ----------------------------------------------------------------


def link_error(obj: bytes, **kwargs) -> str:
    with pytest.raises(LinkError) as info:
        link(obj, **kwargs)
    return str(info.value)


def test_refuses_initialised_writable_global(compile_c):
    obj = compile_c(
        PRELUDE
        + """
uint64_t total = 5;
uint64_t entrypoint(const uint8_t *input) { return total++; }
"""
    )
    message = link_error(obj)
    assert "section .data holds writable data" in message and "`total`" in message


def test_refuses_zeroed_writable_global(compile_c):
    obj = compile_c(
        PRELUDE
        + """
static uint64_t counter;
uint64_t entrypoint(const uint8_t *input) { return counter++; }
"""
    )
    message = link_error(obj)
    assert "section .bss" in message and "`counter`" in message


def test_refuses_call_to_undefined_non_syscall(compile_c):
    obj = compile_c(
        PRELUDE
        + """
void *memcpy(void *dst, const void *src, uint64_t n);
uint64_t entrypoint(const uint8_t *input) { uint8_t b[8]; memcpy(b, input, 8); return b[3]; }
"""
    )
    assert "call to undefined symbol `memcpy`: not a Solana syscall" in link_error(obj)


def test_refuses_pointer_table_in_rodata(compile_c):
    obj = compile_c(
        PRELUDE
        + """
static const char *const names[] = {"alpha", "beta"};
uint64_t entrypoint(const uint8_t *input) {
  sol_log_(names[INSTRUCTION_DATA(input)[0] & 1], 4);
  return 0;
}
"""
    )
    message = link_error(obj)
    assert ".rel.rodata" in message or ".rel.data.rel.ro" in message


def test_refuses_unknown_relocation_type(compile_c):
    obj = bytearray(compile_c(HELLO))
    _, _, _, rel_offset, _ = read_sections(obj)[".rel.text"]
    first_symbol = struct.unpack_from("<Q", obj, rel_offset + 8)[0] >> 32
    struct.pack_into("<Q", obj, rel_offset + 8, first_symbol << 32 | 3)
    message = link_error(bytes(obj))
    assert "unsupported relocation type 3" in message and ".rodata" in message


def test_refuses_missing_entry_symbol(compile_c):
    obj = compile_c(CUSTOM_ERROR)
    assert "entry symbol `process` is not defined" in link_error(obj, entry_symbol="process")


def test_refuses_several_executable_sections(compile_c):
    message = link_error(compile_c(HELLO, "-ffunction-sections"))
    assert "more than one executable section" in message and ".text.lookup" in message


@pytest.mark.parametrize("garbage", [b"", b"not an elf at all", b"\x7fELF" + bytes(60)])
def test_refuses_garbage(garbage):
    assert "input is not" in link_error(garbage)


def test_refuses_non_bpf_object(compile_c):
    obj = bytearray(compile_c(CUSTOM_ERROR))
    struct.pack_into("<H", obj, 18, 62)  # e_machine = x86-64
    assert "not a BPF object" in link_error(bytes(obj))


# --- command line --------------------------------------------------------------


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.sbpf_link", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_cli_links(compile_c, tmp_path):
    (tmp_path / "in.o").write_bytes(compile_c(HELLO))
    proc = run_cli(str(tmp_path / "in.o"), "-o", str(tmp_path / "out.so"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.so").read_bytes() == link((tmp_path / "in.o").read_bytes())


def test_cli_reports_link_errors(compile_c, tmp_path):
    (tmp_path / "in.o").write_bytes(
        compile_c(
            PRELUDE
            + """
void helper_from_elsewhere(void);
uint64_t entrypoint(const uint8_t *input) { helper_from_elsewhere(); return 0; }
"""
        )
    )
    proc = run_cli(str(tmp_path / "in.o"), "-o", str(tmp_path / "out.so"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("sbpf-link: error: call to undefined symbol `helper_from_elsewhere`")
    assert not (tmp_path / "out.so").exists()
