#!/usr/bin/env python3
"""Generates include/ember/tokenizer/unicode_tables.hpp from the Unicode
Character Database shipped by Debian's `unicode-data` package.

    apt-get install -y unicode-data
    tools/gen_unicode_tables.py            # rewrite the header
    tools/gen_unicode_tables.py --check    # exit 1 if the header is stale

The tables are ranges, not per-code-point entries, so the header stays small:
  - general category: start of each run of equal category (binary search);
  - White_Space (PropList.txt);
  - simple lowercase mapping as (first, last, delta, stride) runs;
  - "strip accents": the canonical decomposition (NFD) of a code point with its
    nonspacing marks (Mn) removed, which is all that BERT-style normalizers
    need. Hangul syllables are decomposed algorithmically in C++.
"""

import argparse
import os
import sys

UCD_DIR = "/usr/share/unicode"
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "include",
                      "ember", "tokenizer", "unicode_tables.hpp")

CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No",
              "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So",
              "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"]
MAX_CP = 0x110000


def read_unicode_data(ucd):
    """Returns (category per code point, decomposition map, lowercase map)."""
    category = ["Cn"] * MAX_CP
    decomposition = {}
    lower = {}
    range_start = None
    with open(os.path.join(ucd, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            cp = int(fields[0], 16)
            name, cat = fields[1], fields[2]
            if name.endswith(", First>"):
                range_start = cp
                continue
            if name.endswith(", Last>"):
                for c in range(range_start, cp + 1):
                    category[c] = cat
                range_start = None
                continue
            category[cp] = cat
            decomp = fields[5]
            if decomp and not decomp.startswith("<"):  # canonical only
                decomposition[cp] = [int(x, 16) for x in decomp.split()]
            if fields[13]:
                lower[cp] = int(fields[13], 16)
    return category, decomposition, lower


def read_white_space(ucd):
    ranges = []
    with open(os.path.join(ucd, "PropList.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            cps, prop = [x.strip() for x in line.split(";")]
            if prop != "White_Space":
                continue
            if ".." in cps:
                a, b = cps.split("..")
                ranges.append((int(a, 16), int(b, 16)))
            else:
                ranges.append((int(cps, 16), int(cps, 16)))
    return sorted(ranges)


def full_decomposition(cp, decomposition):
    if cp not in decomposition:
        return [cp]
    out = []
    for c in decomposition[cp]:
        out.extend(full_decomposition(c, decomposition))
    return out


def category_runs(category):
    runs = []
    for cp in range(MAX_CP):
        if not runs or runs[-1][1] != category[cp]:
            runs.append((cp, category[cp]))
    return runs


def lowercase_runs(lower):
    """Groups the mapping into runs (first, last, delta, stride)."""
    runs = []
    for cp in sorted(lower):
        delta = lower[cp] - cp
        if runs:
            first, last, d, stride = runs[-1]
            if d == delta and (stride == 0 or cp - last == stride) and cp - last <= 2:
                runs[-1] = (first, cp, d, cp - last)
                continue
        runs.append((cp, cp, delta, 0))
    return [(a, b, d, s if s else 1) for a, b, d, s in runs]


def strip_accent_tables(category, decomposition):
    """Single-code-point results as runs (first, last, base); the rest listed."""
    single, multi = [], []
    for cp in sorted(decomposition):
        kept = [c for c in full_decomposition(cp, decomposition) if category[c] != "Mn"]
        if category[cp] == "Mn":
            # A nonspacing mark is dropped whole; check that nothing else hides in it.
            assert not kept, hex(cp)
            continue
        assert kept, hex(cp)
        if len(kept) == 1:
            if single and single[-1][1] == cp - 1 and single[-1][2] == kept[0]:
                single[-1] = (single[-1][0], cp, kept[0])
            else:
                single.append((cp, cp, kept[0]))
        else:
            assert len(kept) <= 3, hex(cp)
            multi.append((cp, kept + [0] * (3 - len(kept))))
    return single, multi


def rows(items, per_line):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


def render(ucd):
    category, decomposition, lower = read_unicode_data(ucd)
    runs = category_runs(category)
    white = read_white_space(ucd)
    low = lowercase_runs(lower)
    single, multi = strip_accent_tables(category, decomposition)
    version = "unknown"
    readme = os.path.join(ucd, "ReadMe.txt")
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as f:
            for line in f:
                if "Version" in line and "Unicode" in line:
                    version = line.strip().lstrip("#").strip()
                    break

    out = []
    out.append("// Generated by tools/gen_unicode_tables.py from the Unicode Character Database")
    out.append(f"// ({version}). Do not edit; rerun the script.")
    out.append("#pragma once")
    out.append("")
    out.append("#include <cstdint>")
    out.append("")
    out.append("// clang-format off")
    out.append("namespace ember::unicode {")
    out.append("")
    out.append("// Unicode general categories, in the order of the Unicode standard's table.")
    out.append("enum class Category : uint8_t {")
    out.append("  " + ", ".join(CATEGORIES) + ",")
    out.append("};")
    out.append("")
    out.append("namespace tables {")
    out.append("")
    out.append("// Category runs: code points [kCategoryStart[i], kCategoryStart[i + 1]) all")
    out.append("// have category kCategoryValue[i]; the last run ends at 0x110000.")
    out.append(f"inline constexpr int kCategoryRuns = {len(runs)};")
    out.append("inline constexpr uint32_t kCategoryStart[kCategoryRuns] = {")
    out.append(rows([f"0x{cp:X}," for cp, _ in runs], 10))
    out.append("};")
    out.append("inline constexpr uint8_t kCategoryValue[kCategoryRuns] = {")
    out.append(rows([f"{CATEGORIES.index(c)}," for _, c in runs], 24))
    out.append("};")
    out.append("")
    out.append("// Categories of U+0000..U+00FF, for a fast path on common text.")
    out.append("inline constexpr uint8_t kLatin1Category[256] = {")
    out.append(rows([f"{CATEGORIES.index(category[cp])}," for cp in range(256)], 32))
    out.append("};")
    out.append("")
    out.append("// White_Space property, inclusive ranges.")
    out.append("struct Range { uint32_t first, last; };")
    out.append(f"inline constexpr Range kWhiteSpace[{len(white)}] = {{")
    out.append(rows([f"{{0x{a:X}, 0x{b:X}}}," for a, b in white], 6))
    out.append("};")
    out.append("")
    out.append("// Simple lowercase mapping: for first <= cp <= last with (cp - first) % stride")
    out.append("// == 0, lower(cp) = cp + delta.")
    out.append("struct CaseRun { uint32_t first, last; int32_t delta; uint32_t stride; };")
    out.append(f"inline constexpr CaseRun kLowercase[{len(low)}] = {{")
    out.append(rows([f"{{0x{a:X}, 0x{b:X}, {d}, {s}}}," for a, b, d, s in low], 4))
    out.append("};")
    out.append("")
    out.append("// Canonical decomposition without nonspacing marks (what BERT's strip_accents")
    out.append("// keeps): every code point in [first, last] becomes `base`.")
    out.append("struct BaseRun { uint32_t first, last, base; };")
    out.append(f"inline constexpr BaseRun kStripAccentSingle[{len(single)}] = {{")
    out.append(rows([f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for a, b, c in single], 4))
    out.append("};")
    out.append("// The few whose decomposition keeps several code points (zero-padded).")
    out.append("struct MultiBase { uint32_t cp; uint32_t base[3]; };")
    out.append(f"inline constexpr MultiBase kStripAccentMulti[{len(multi)}] = {{")
    out.append(rows([f"{{0x{cp:X}, {{0x{k[0]:X}, 0x{k[1]:X}, 0x{k[2]:X}}}}}," for cp, k in multi], 3))
    out.append("};")
    out.append("")
    out.append("}  // namespace tables")
    out.append("}  // namespace ember::unicode")
    out.append("// clang-format on")
    out.append("")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="say whether the committed header is current; exit 1 if not")
    parser.add_argument("--ucd", default=UCD_DIR, help="directory with UnicodeData.txt etc.")
    parser.add_argument("--output", default=HEADER)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.ucd, "UnicodeData.txt")):
        sys.exit(f"{args.ucd}/UnicodeData.txt not found (apt-get install unicode-data)")
    text = render(args.ucd)
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            print(f"{args.output} is current")
            return 0
        print(f"{args.output} is stale: rerun tools/gen_unicode_tables.py")
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
