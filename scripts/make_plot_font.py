"""Regenerate assets/fonts/DejaVuSans-subset.ttf from Debian's fonts-dejavu-core.

Not run by the build; kept so the embedded font can be reproduced:

    apt-get install -y fonts-dejavu-core
    python3 -m venv /tmp/ftenv && /tmp/ftenv/bin/pip install fonttools
    /tmp/ftenv/bin/python scripts/make_plot_font.py   # from the repository root

Keeps Basic Latin, Latin-1, Greek and a few symbols (minus sign, dashes,
arrows, <=, >=, ~=, infinity), drops hinting and OpenType layout tables
(ab_glyph, which plotters and plot.rs render text with, uses neither), and
rebuilds the legacy `kern` table -- the only kerning source ab_glyph reads --
because fontTools' subsetter cannot subset it and would drop it.
"""

from fontTools import subset
from fontTools.ttLib import TTFont, newTable
from fontTools.ttLib.tables._k_e_r_n import KernTable_format_0

SRC = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DST = "assets/fonts/DejaVuSans-subset.ttf"
UNICODES = (
    list(range(0x20, 0x7F))
    + list(range(0xA0, 0x100))
    + list(range(0x391, 0x3AA))
    + list(range(0x3B1, 0x3CA))
    + list(range(0x2010, 0x2028))
    + [0x2030, 0x2032, 0x2033, 0x2190, 0x2191, 0x2192, 0x2193]
    + [0x2212, 0x221E, 0x2248, 0x2264, 0x2265]
)

orig_pairs = {}
for table in TTFont(SRC)["kern"].kernTables:
    orig_pairs.update(table.kernTable)

opts = subset.Options()
opts.hinting = False
opts.layout_features = []
opts.drop_tables += ["MATH", "FFTM", "GSUB", "GPOS", "GDEF"]
opts.name_IDs = ["*"]
opts.name_languages = ["*"]
opts.notdef_outline = True
font = TTFont(SRC, recalcTimestamp=False)  # reproducible bytes
subsetter = subset.Subsetter(opts)
subsetter.populate(unicodes=UNICODES)
subsetter.subset(font)

kept = set(font.getGlyphOrder())
pairs = {(a, b): v for (a, b), v in orig_pairs.items() if a in kept and b in kept and v}
kern = newTable("kern")
kern.version = 0
sub = KernTable_format_0()
sub.version, sub.format, sub.coverage, sub.tupleIndex = 0, 0, 1, None
sub.kernTable = pairs
kern.kernTables = [sub]
font["kern"] = kern
font.save(DST)
print(f"{DST}: {len(kept)} glyphs, {len(pairs)} kerning pairs")
