"""Post-link a clang-19 relocatable BPF object into an SBPFv0 shared object.

clang can compile C for ``bpfel`` but cannot produce the ``ET_DYN`` file the
Solana loader (Agave / LiteSVM, "lenient" SBPFv0 ELF parser) expects, and the
project does not depend on the Solana LLVM fork and its ``ld.lld``.  This module does the
small amount of linking a single-object program needs:

* internal calls carrying an ``R_BPF_64_32`` relocation are resolved to
  pc-relative offsets here, so the loader treats them as internal calls;
* ``lddw`` loads of ``.rodata`` (``R_BPF_64_64``) get the final address written
  into the instruction plus an ``R_BPF_64_RELATIVE`` dynamic relocation;
* syscalls (``call -1`` + ``R_BPF_64_32`` against an undefined symbol) become
  dynamic ``R_BPF_64_32`` relocations against ``.dynsym`` entries.

Everything the loader would reject (writable globals, data relocations,
unknown symbols) is refused up front with a :class:`LinkError` that names the
culprit.  Every section is placed at an address equal to its file offset.
"""

import argparse
import struct
import sys
from dataclasses import dataclass

__all__ = ["KNOWN_SYSCALLS", "LinkError", "link"]

KNOWN_SYSCALLS = frozenset(
    [
        "abort",
        "sol_panic_",
        "sol_log_",
        "sol_log_64_",
        "sol_log_compute_units_",
        "sol_log_pubkey",
        "sol_create_program_address",
        "sol_try_find_program_address",
        "sol_sha256",
        "sol_keccak256",
        "sol_secp256k1_recover",
        "sol_blake3",
        "sol_get_clock_sysvar",
        "sol_get_epoch_schedule_sysvar",
        "sol_get_fees_sysvar",
        "sol_get_rent_sysvar",
        "sol_get_last_restart_slot",
        "sol_get_epoch_rewards_sysvar",
        "sol_memcpy_",
        "sol_memmove_",
        "sol_memcmp_",
        "sol_memset_",
        "sol_invoke_signed_c",
        "sol_invoke_signed_rust",
        "sol_alloc_free_",
        "sol_set_return_data",
        "sol_get_return_data",
        "sol_log_data",
        "sol_get_processed_sibling_instruction",
        "sol_get_stack_height",
        "sol_curve_validate_point",
        "sol_curve_group_op",
        "sol_curve_multiscalar_mul",
        "sol_curve_pairing_map",
        "sol_alt_bn128_group_op",
        "sol_alt_bn128_compression",
        "sol_big_mod_exp",
        "sol_poseidon",
        "sol_remaining_compute_units",
        "sol_get_sysvar",
        "sol_get_epoch_stake",
    ]
)

# --- ELF constants ---------------------------------------------------------
ELF_MAGIC = b"\x7fELF"
ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE = 2, 1, 1, 0
ET_REL, ET_DYN = 1, 3
EM_BPF = 247
EHDR_FMT = "<16sHHIQQQIHHHHHH"  # Elf64_Ehdr
SHDR_FMT = "<IIQQQQIIQQ"  # Elf64_Shdr
PHDR_FMT = "<IIQQQQQQ"  # Elf64_Phdr
SYM_FMT = "<IBBHQQ"  # Elf64_Sym
REL_FMT = "<QQ"  # Elf64_Rel
DYN_FMT = "<qQ"  # Elf64_Dyn
EHDR_SIZE, SHDR_SIZE, PHDR_SIZE = 64, 64, 56
SYM_SIZE, REL_SIZE, DYN_SIZE = 24, 16, 16
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 1, 2, 3
SHT_RELA, SHT_DYNAMIC, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 4, 6, 8, 9, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_COMMON = 0, 0xFFF2
STB_GLOBAL = 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
PT_LOAD, PT_DYNAMIC = 1, 2
PF_X, PF_R = 1, 4
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
DT_REL, DT_RELSZ, DT_RELENT, DT_TEXTREL = 17, 18, 19, 22

# --- BPF constants ---------------------------------------------------------
INSN_SIZE = 8
IMM_OFFSET = 4  # byte offset of the 32-bit imm in a slot
OP_LDDW, OP_CALL = 0x18, 0x85
CALL_EXTERNAL_IMM = 0xFFFFFFFF  # `call -1`: the loader resolves it by symbol
R_BPF_64_64, R_BPF_64_RELATIVE, R_BPF_64_32 = 1, 8, 10
SECTION_ALIGN = 8  # tables are read as aligned u64 arrays
SBPF_V0_FLAGS = 0  # e_flags 0 selects SBPFv0 (the lenient loader)
PHDR_COUNT = 3  # PT_LOAD code+rodata, PT_LOAD tables, PT_DYNAMIC
OUT_TEXT_INDEX = 1  # .text is the first output section


class LinkError(Exception):
    """The object cannot become a loadable Solana program; says which part."""


@dataclass
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    data: bytes


@dataclass
class Symbol:
    name: str
    info: int
    shndx: int
    value: int
    size: int


def _align(value: int, alignment: int) -> int:
    return value if alignment <= 1 else (value + alignment - 1) // alignment * alignment


def _cstr(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


# --- reading the relocatable object -----------------------------------------


def _parse_sections(obj: bytes) -> list:
    """Check the header is a little-endian ELF64 BPF ET_REL; return sections."""
    if len(obj) < EHDR_SIZE or obj[:4] != ELF_MAGIC:
        raise LinkError("input is not an ELF file")
    (
        ident,
        e_type,
        machine,
        _version,
        _entry,
        _phoff,
        shoff,
        _flags,
        _ehsize,
        _phentsize,
        _phnum,
        shentsize,
        shnum,
        shstrndx,
    ) = struct.unpack_from(EHDR_FMT, obj)
    if ident[4] != ELFCLASS64 or ident[5] != ELFDATA2LSB:
        raise LinkError("input is not a 64-bit little-endian ELF file")
    if machine != EM_BPF:
        raise LinkError(f"input is not a BPF object (e_machine={machine})")
    if e_type != ET_REL:
        raise LinkError(f"input is not a relocatable object (e_type={e_type}); compile with -c")
    if shentsize != SHDR_SIZE or shoff + shnum * SHDR_SIZE > len(obj) or shstrndx >= shnum:
        raise LinkError("input has a truncated or malformed section header table")
    raw = [struct.unpack_from(SHDR_FMT, obj, shoff + i * SHDR_SIZE) for i in range(shnum)]
    names_off = raw[shstrndx][4]
    sections = []
    for i, (name, typ, flags, _, off, size, link, info, align, _) in enumerate(raw):
        if typ != SHT_NOBITS and off + size > len(obj):
            raise LinkError(f"section #{i} extends past the end of the input")
        data = b"" if typ == SHT_NOBITS else obj[off : off + size]
        sections.append(
            Section(i, _cstr(obj, names_off + name), typ, flags, off, size, link, info, max(align, 1), data)
        )
    return sections


def _parse_symbols(sections: list) -> list:
    symtab = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if symtab is None:
        raise LinkError("input has no .symtab section")
    if symtab.link >= len(sections):
        raise LinkError(f"section {symtab.name} links to a missing string table")
    strtab = sections[symtab.link].data
    symbols = []
    for off in range(0, len(symtab.data) - SYM_SIZE + 1, SYM_SIZE):
        name, info, _, shndx, value, size = struct.unpack_from(SYM_FMT, symtab.data, off)
        if info & 0xF == STT_SECTION:
            name_str = sections[shndx].name if shndx < len(sections) else ""
        else:
            name_str = _cstr(strtab, name)
        symbols.append(Symbol(name_str, info, shndx, value, size))
    return symbols


# --- checks ----------------------------------------------------------------


def _is_rodata(sec: Section) -> bool:
    return (sec.name == ".rodata" or sec.name.startswith(".rodata.")) and sec.flags & (
        SHF_ALLOC | SHF_WRITE | SHF_EXECINSTR
    ) == SHF_ALLOC


def _refuse_writable_data(sections: list, symbols: list) -> None:
    """Solana maps programs read-only: any writable global cannot work."""
    common = [s.name for s in symbols if s.shndx == SHN_COMMON]
    if common:
        raise LinkError(
            f"common symbol `{common[0]}` is writable data; Solana programs "
            "cannot have writable globals — make it const or move it to the stack"
        )
    for sec in sections:
        writable = sec.flags & (SHF_ALLOC | SHF_WRITE) == SHF_ALLOC | SHF_WRITE
        # .data.rel.ro is `const` in C; it is refused below for its relocations.
        if not writable or sec.name.startswith(".data.rel.ro"):
            continue
        owners = [
            f"`{s.name}`"
            for s in symbols
            if s.shndx == sec.index and s.info & 0xF in (STT_OBJECT, STT_NOTYPE) and s.name
        ]
        what = f" (global {', '.join(owners[:3])})" if owners else ""
        raise LinkError(
            f"section {sec.name} holds writable data{what}; Solana programs cannot "
            "have writable globals — make it const or move it to the stack"
        )


def _refuse_data_relocations(sections: list, text: Section) -> None:
    """Only .text may be relocated: pointers stored in data need a real linker."""
    for sec in sections:
        if sec.type not in (SHT_REL, SHT_RELA) or sec.info >= len(sections):
            continue
        target = sections[sec.info]
        if not target.flags & SHF_ALLOC:
            continue  # debug info, BTF: dropped
        if target is not text:
            raise LinkError(
                f"section {sec.name}: relocations in data (e.g. a table of "
                f"pointers such as `static const char *const names[]`) are "
                f"not supported; only .text may be relocated"
            )
        if sec.type == SHT_RELA:
            raise LinkError(f"section {sec.name}: RELA relocations are not supported")


def _find_text(sections: list) -> Section:
    code = [s for s in sections if s.flags & SHF_EXECINSTR and s.size > 0]
    if not code:
        raise LinkError("input has no executable code (.text is empty)")
    if len(code) > 1:
        names = ", ".join(s.name for s in code)
        raise LinkError(
            f"more than one executable section ({names}); only a single .text "
            "is supported — do not compile with -ffunction-sections"
        )
    if code[0].size % INSN_SIZE:
        raise LinkError(f"section {code[0].name} size is not a multiple of {INSN_SIZE}")
    return code[0]


def _refuse_unknown_alloc(sections: list, text: Section) -> None:
    for sec in sections:
        if sec.flags & SHF_ALLOC and sec.size and sec is not text and not _is_rodata(sec):
            raise LinkError(f"section {sec.name} is not supported (only .text and .rodata*)")


def _find_entry(symbols: list, text: Section, entry_symbol: str) -> Symbol:
    found = [s for s in symbols if s.name == entry_symbol and s.info & 0xF != STT_SECTION and s.shndx != SHN_UNDEF]
    found.sort(key=lambda s: s.info >> 4 != STB_GLOBAL)  # prefer global
    if not found:
        raise LinkError(f"entry symbol `{entry_symbol}` is not defined")
    entry = found[0]
    if entry.shndx != text.index or entry.value % INSN_SIZE:
        raise LinkError(f"entry symbol `{entry_symbol}` is not a function in {text.name}")
    return entry


# --- layout and relocation --------------------------------------------------


def _merge_rodata(inputs: list, rodata_addr: int, bases: dict) -> bytes:
    """Concatenate the .rodata* inputs (in input order, each at its own alignment)
    into the one .rodata the loader maps; record each input's address in bases."""
    blob = bytearray()
    for sec in inputs:
        blob += bytes(_align(len(blob), sec.align) - len(blob))
        bases[sec.index] = rodata_addr + len(blob)
        blob += sec.data if sec.type != SHT_NOBITS else bytes(sec.size)
    return bytes(blob)


def _patch_lddw(text_bytes: bytearray, r_offset: int, sym: Symbol, bases: dict) -> None:
    """Write the final address of sym + addend into both halves of an lddw.

    The loader's R_BPF_64_RELATIVE then only rebases it to MM_PROGRAM_START."""
    if sym.shndx not in bases or r_offset + 2 * INSN_SIZE > len(text_bytes):
        raise LinkError(f"lddw at .text+{r_offset:#x} refers to `{sym.name}`, which is not defined in .text or .rodata")
    imm_at = r_offset + IMM_OFFSET
    addend = struct.unpack_from("<i", text_bytes, imm_at)[0]
    address = bases[sym.shndx] + sym.value + addend
    if not 0 < address < 1 << 32:
        raise LinkError(f"lddw at .text+{r_offset:#x}: `{sym.name}`{addend:+d} is out of range")
    struct.pack_into("<I", text_bytes, imm_at, address)
    struct.pack_into("<I", text_bytes, imm_at + INSN_SIZE, 0)


def _patch_call(text_bytes: bytearray, r_offset: int, sym: Symbol, text: Section) -> bool:
    """Resolve a call in place; return True when it must stay a syscall (`call -1`)."""
    imm_at = r_offset + IMM_OFFSET
    if sym.shndx == SHN_UNDEF:
        if sym.name not in KNOWN_SYSCALLS:
            raise LinkError(f"call to undefined symbol `{sym.name}`: not a Solana syscall; define it in the program")
        struct.pack_into("<I", text_bytes, imm_at, CALL_EXTERNAL_IMM)
        return True
    if sym.shndx != text.index:
        raise LinkError(f"call to `{sym.name}`, which is not a function in {text.name}")
    delta = sym.value // INSN_SIZE - (r_offset // INSN_SIZE + 1)
    if delta == -1:  # would read as `call -1`, i.e. a syscall
        raise LinkError(f"`{sym.name}` calls itself as its first instruction")
    struct.pack_into("<i", text_bytes, imm_at, delta)
    return False


def _relocate_text(text_bytes: bytearray, rels: list, symbols: list, text: Section, bases: dict) -> list:
    """Patch .text in place; return dynamic relocations as (address, type, syscall).

    bases maps input section index -> output address (.text and each .rodata*)."""
    dynamic = []
    for r_offset, r_info in rels:
        r_type, sym_index = r_info & 0xFFFFFFFF, r_info >> 32
        if sym_index >= len(symbols):
            raise LinkError(f"relocation at {text.name}+{r_offset:#x} names symbol #{sym_index}, which does not exist")
        sym = symbols[sym_index]
        if r_offset % INSN_SIZE or r_offset + INSN_SIZE > len(text_bytes):
            raise LinkError(f"relocation against `{sym.name}` at {text.name}+{r_offset:#x} is not on an instruction")
        opcode, address = text_bytes[r_offset], bases[text.index] + r_offset
        if r_type == R_BPF_64_64 and opcode == OP_LDDW:
            _patch_lddw(text_bytes, r_offset, sym, bases)
            dynamic.append((address, R_BPF_64_RELATIVE, None))
        elif r_type == R_BPF_64_32 and opcode == OP_CALL:
            if _patch_call(text_bytes, r_offset, sym, text):
                dynamic.append((address, R_BPF_64_32, sym.name))
        else:
            raise LinkError(
                f"unsupported relocation type {r_type} against `{sym.name}` at "
                f"{text.name}+{r_offset:#x} (opcode {opcode:#04x}); only "
                "R_BPF_64_64 on lddw and R_BPF_64_32 on call are supported"
            )
    return dynamic


def _text_relocations(sections: list, text: Section) -> list:
    for sec in sections:
        if sec.type == SHT_REL and sec.info == text.index:
            return [
                struct.unpack_from(REL_FMT, sec.data, off) for off in range(0, len(sec.data) - REL_SIZE + 1, REL_SIZE)
            ]
    return []


# --- writing the shared object -----------------------------------------------


@dataclass
class OutSection:
    name: str
    type: int
    flags: int
    data: bytes
    align: int = SECTION_ALIGN
    link: int = 0
    info: int = 0
    entsize: int = 0
    offset: int = 0  # also the address, for SHF_ALLOC sections


def _layout(sections: list, start: int) -> int:
    """Give each section a file offset (which is also its address); return end."""
    offset = start
    for sec in sections:
        sec.offset = _align(offset, sec.align)
        offset = sec.offset + len(sec.data)
    return offset


def _build_dynsym(entry: Symbol, entry_addr: int, syscalls: list):
    """.dynsym/.dynstr: null symbol, the exported entry, then undefined syscalls.

    Syscalls must be undefined (st_value 0): that is how the loader tells a
    syscall from a bpf-to-bpf call.  Returns (dynsym, dynstr, {name: index})."""
    strtab, syms, index = bytearray(b"\0"), [bytes(SYM_SIZE)], {}
    for name, info, shndx, value, size in [
        (entry.name, STB_GLOBAL << 4 | STT_FUNC, OUT_TEXT_INDEX, entry_addr, entry.size)
    ] + [(n, STB_GLOBAL << 4 | STT_NOTYPE, SHN_UNDEF, 0, 0) for n in syscalls]:
        index[name] = len(syms)
        syms.append(struct.pack(SYM_FMT, len(strtab), info, 0, shndx, value, size))
        strtab += name.encode() + b"\0"
    return b"".join(syms), bytes(strtab), index


def _dynamic_entries(dynsym, dynstr, rel_dyn) -> list:
    entries = [
        (DT_SYMTAB, dynsym.offset),
        (DT_SYMENT, SYM_SIZE),
        (DT_STRTAB, dynstr.offset),
        (DT_STRSZ, len(dynstr.data)),
    ]
    if rel_dyn.data:  # the loader rejects DT_REL with DT_RELSZ == 0
        entries += [(DT_REL, rel_dyn.offset), (DT_RELSZ, len(rel_dyn.data)), (DT_RELENT, REL_SIZE), (DT_TEXTREL, 0)]
    return entries + [(DT_NULL, 0)]


def _dynamic_tables(entry: Symbol, entry_addr: int, dyn_relocs: list, first_index: int, start: int) -> list:
    """Build .dynamic, .dynsym, .dynstr, .rel.dyn (output indices from first_index),
    laid out from file offset start: the tables the loader reads relocations from."""
    dynsym_index, dynstr_index = first_index + 1, first_index + 2
    syscalls = sorted({name for _, _, name in dyn_relocs if name})
    dynsym_data, dynstr_data, sym_index = _build_dynsym(entry, entry_addr, syscalls)
    rel_data = b"".join(
        struct.pack(REL_FMT, off, (sym_index[name] if name else 0) << 32 | typ)
        for off, typ, name in sorted(dyn_relocs, key=lambda r: r[0])
    )
    dynamic = OutSection(".dynamic", SHT_DYNAMIC, SHF_ALLOC, b"", link=dynstr_index, entsize=DYN_SIZE)
    dynsym = OutSection(
        ".dynsym", SHT_DYNSYM, SHF_ALLOC, dynsym_data, link=dynstr_index, info=1, entsize=SYM_SIZE
    )  # info: first global symbol
    dynstr = OutSection(".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_data, align=1)
    rel_dyn = OutSection(".rel.dyn", SHT_REL, SHF_ALLOC, rel_data, link=dynsym_index, entsize=REL_SIZE)
    tables = [dynamic, dynsym, dynstr, rel_dyn]
    # The .dynamic size is known before the offsets it records.
    dynamic.data = bytes(DYN_SIZE * len(_dynamic_entries(dynsym, dynstr, rel_dyn)))
    _layout(tables, start)
    dynamic.data = b"".join(
        struct.pack(DYN_FMT, tag, value) for tag, value in _dynamic_entries(dynsym, dynstr, rel_dyn)
    )
    return tables


def _program_header(p_type: int, flags: int, first: OutSection, last: OutSection) -> bytes:
    size = last.offset + len(last.data) - first.offset
    return struct.pack(PHDR_FMT, p_type, flags, first.offset, first.offset, first.offset, size, size, SECTION_ALIGN)


def _write_elf(out: list, entry_addr: int, phdrs: list) -> bytes:
    """Serialise header, program headers, sections (in order) and section headers."""
    names = OutSection(".shstrtab", SHT_STRTAB, 0, b"", align=1)
    out = out + [names]
    shstrtab, name_offsets = bytearray(b"\0"), []
    for sec in out:
        name_offsets.append(len(shstrtab))
        shstrtab += sec.name.encode() + b"\0"
    names.data = bytes(shstrtab)
    end = _layout([names], out[-2].offset + len(out[-2].data))
    shoff = _align(end, SECTION_ALIGN)

    ident = ELF_MAGIC + bytes([ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_NONE]) + bytes(8)
    image = bytearray(
        struct.pack(
            EHDR_FMT,
            ident,
            ET_DYN,
            EM_BPF,
            EV_CURRENT,
            entry_addr,
            EHDR_SIZE,
            shoff,
            SBPF_V0_FLAGS,
            EHDR_SIZE,
            PHDR_SIZE,
            len(phdrs),
            SHDR_SIZE,
            len(out) + 1,
            len(out),
        )
    )
    image += b"".join(phdrs)
    headers = [bytes(SHDR_SIZE)]
    for sec, name_offset in zip(out, name_offsets, strict=True):
        image += bytes(sec.offset - len(image)) + sec.data
        addr = sec.offset if sec.flags & SHF_ALLOC else 0
        headers.append(
            struct.pack(
                SHDR_FMT,
                name_offset,
                sec.type,
                sec.flags,
                addr,
                sec.offset,
                len(sec.data),
                sec.link,
                sec.info,
                sec.align,
                sec.entsize,
            )
        )
    image += bytes(shoff - len(image)) + b"".join(headers)
    return bytes(image)


def link(obj: bytes, *, entry_symbol: str = "entrypoint") -> bytes:
    """Turn a clang-19 ``-target bpfel -c`` object into an SBPFv0 ``.so``.

    Raises LinkError naming the symbol or section when the object cannot work."""
    sections = _parse_sections(bytes(obj))
    symbols = _parse_symbols(sections)
    _refuse_writable_data(sections, symbols)
    text = _find_text(sections)
    _refuse_data_relocations(sections, text)
    _refuse_unknown_alloc(sections, text)
    entry = _find_entry(symbols, text, entry_symbol)

    # .text and .rodata first: their addresses are baked into the code.
    text_out = OutSection(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text.data, max(text.align, SECTION_ALIGN))
    program = [text_out]
    rodata_inputs = [s for s in sections if _is_rodata(s)]
    if rodata_inputs:
        program.append(
            OutSection(".rodata", SHT_PROGBITS, SHF_ALLOC, b"", max([SECTION_ALIGN] + [s.align for s in rodata_inputs]))
        )
    _layout(program, EHDR_SIZE + PHDR_COUNT * PHDR_SIZE)
    bases = {text.index: text_out.offset}
    if rodata_inputs:
        program[1].data = _merge_rodata(rodata_inputs, program[1].offset, bases)
    text_bytes = bytearray(text.data)
    dyn_relocs = _relocate_text(text_bytes, _text_relocations(sections, text), symbols, text, bases)
    text_out.data = bytes(text_bytes)
    entry_addr = text_out.offset + entry.value

    tables = _dynamic_tables(
        entry, entry_addr, dyn_relocs, first_index=len(program) + 1, start=program[-1].offset + len(program[-1].data)
    )
    dynamic, rel_dyn = tables[0], tables[-1]
    phdrs = [
        _program_header(PT_LOAD, PF_R | PF_X, program[0], program[-1]),
        _program_header(PT_LOAD, PF_R, dynamic, rel_dyn),
        _program_header(PT_DYNAMIC, PF_R, dynamic, dynamic),
    ]
    return _write_elf(program + tables, entry_addr, phdrs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sbpf-link", description=__doc__.splitlines()[0])
    parser.add_argument("input", help="relocatable BPF object from clang-19 -c")
    parser.add_argument("-o", "--output", required=True, help="SBPFv0 shared object to write")
    parser.add_argument("--entry", default="entrypoint", help="entry symbol (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        with open(args.input, "rb") as f:
            so = link(f.read(), entry_symbol=args.entry)
        with open(args.output, "wb") as f:
            f.write(so)
    except (LinkError, OSError) as err:
        print(f"sbpf-link: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
