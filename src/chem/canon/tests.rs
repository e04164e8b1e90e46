//! Unit tests on hand-built sanitized molecules: invariance under relabelling, stereo
//! distinctions, bracket rules.

use super::canonical_smiles;
use super::rank::{individualize, Graph, Scratch};
use crate::chem::nontetrahedral::Shape;
use crate::chem::{mol_from_smiles, Atom, BondDir, BondType, ChiralTag, Mol};
use proptest::prelude::*;

/// Atom spec: (element, total H, aromatic).
fn mol(atoms: &[(u8, u8, bool)], bonds: &[(usize, usize, BondType)]) -> Mol {
    let mut m = Mol::new();
    for &(element, h, aromatic) in atoms {
        m.add_atom(Atom {
            element,
            implicit_h: h,
            aromatic,
            ..Default::default()
        });
    }
    for &(a, b, kind) in bonds {
        m.add_bond(a, b, kind, BondDir::None);
    }
    m
}

fn flip_tag(t: ChiralTag) -> ChiralTag {
    match t {
        ChiralTag::Cw => ChiralTag::Ccw,
        ChiralTag::Ccw => ChiralTag::Cw,
        other => other,
    }
}

fn flip_dir(d: BondDir) -> BondDir {
    match d {
        BondDir::EndUpRight => BondDir::EndDownRight,
        BondDir::EndDownRight => BondDir::EndUpRight,
        BondDir::None => BondDir::None,
    }
}

/// The same molecule with atoms renumbered by `perm` (old -> new), bonds added in the order
/// `bond_order` and each bond's ends swapped where `swap` says so; chiral tags and bond
/// directions are re-expressed so the stereochemistry is unchanged.
fn relabel(m: &Mol, perm: &[usize], bond_order: &[usize], swap: &[bool]) -> Mol {
    let n = m.atoms.len();
    let mut inv = vec![0; n];
    for (old, &new) in perm.iter().enumerate() {
        inv[new] = old;
    }
    let mut out = Mol::new();
    for &old in &inv {
        out.add_atom(m.atoms[old].clone());
    }
    for &bi in bond_order {
        let b = &m.bonds[bi];
        let (mut x, mut y, mut dir) = (perm[b.begin], perm[b.end], b.dir);
        if swap[bi] {
            std::mem::swap(&mut x, &mut y);
            dir = flip_dir(dir);
        }
        out.add_bond(x, y, b.kind, dir);
    }
    for old in 0..n {
        let new = perm[old];
        // Reference orders (H last) before and after, in new atom numbers.
        let before: Vec<usize> = m.neighbors(old).map(|a| perm[a]).collect();
        let after: Vec<usize> = out.neighbors(new).collect();
        let mut odd = false;
        let pos: Vec<usize> = after
            .iter()
            .map(|a| before.iter().position(|b| b == a).unwrap_or(0))
            .collect();
        for i in 0..pos.len() {
            for j in i + 1..pos.len() {
                if pos[i] > pos[j] {
                    odd = !odd;
                }
            }
        }
        if odd {
            out.atoms[new].chiral = flip_tag(out.atoms[new].chiral);
        }
        if let Some((shape, n)) = Shape::of(m.atoms[old].chiral) {
            let from = shape.stored_order(&before, usize::MAX);
            let to = shape.stored_order(&after, usize::MAX);
            let n = match (from, to) {
                (Some(from), Some(to)) if n != 0 => shape.reexpress(n, &from, &to).unwrap_or(0),
                _ => n,
            };
            out.atoms[new].chiral = shape.tag(n);
        }
    }
    out
}

fn shuffled(m: &Mol, seed: u64) -> Mol {
    // Small deterministic LCG: the tests stay reproducible without extra crates.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |k: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % k as u64) as usize
    };
    let n = m.atoms.len();
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, next(i + 1));
    }
    let mut order: Vec<usize> = (0..m.bonds.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, next(i + 1));
    }
    let swap: Vec<bool> = (0..m.bonds.len()).map(|_| next(2) == 1).collect();
    relabel(m, &perm, &order, &swap)
}

fn assert_invariant(m: &Mol) {
    for iso in [true, false] {
        let want = canonical_smiles(m, iso);
        for seed in 0..20 {
            assert_eq!(
                canonical_smiles(&shuffled(m, seed), iso),
                want,
                "seed {seed}"
            );
        }
    }
}

/// 1,4-dimethylcyclohexane with both ring carbons tagged (`C[C@@H]1CC[C@@H](C)CC1` = cis,
/// as RDKit reads it: atoms 0..7 in SMILES order).
fn dimethylcyclohexane(second: ChiralTag) -> Mol {
    use BondType::Single as S;
    let mut m = mol(
        &[
            (6, 3, false),
            (6, 1, false),
            (6, 2, false),
            (6, 2, false),
            (6, 1, false),
            (6, 3, false),
            (6, 2, false),
            (6, 2, false),
        ],
        &[
            (0, 1, S),
            (1, 2, S),
            (2, 3, S),
            (3, 4, S),
            (4, 5, S),
            (4, 6, S),
            (6, 7, S),
            (7, 1, S),
        ],
    );
    m.atoms[1].chiral = ChiralTag::Cw;
    m.atoms[4].chiral = second;
    m
}

/// `F/C=C/F` (trans) or `F/C=C\F` (cis).
fn difluoroethene(trans: bool) -> Mol {
    let mut m = mol(
        &[(9, 0, false), (6, 1, false), (6, 1, false), (9, 0, false)],
        &[],
    );
    m.add_bond(0, 1, BondType::Single, BondDir::EndUpRight);
    m.add_bond(1, 2, BondType::Double, BondDir::None);
    let d = if trans {
        BondDir::EndUpRight
    } else {
        BondDir::EndDownRight
    };
    m.add_bond(2, 3, BondType::Single, d);
    m
}

#[test]
fn ethanol_any_order() {
    let a = mol(
        &[(6, 3, false), (6, 2, false), (8, 1, false)],
        &[(0, 1, BondType::Single), (1, 2, BondType::Single)],
    );
    let b = mol(
        &[(8, 1, false), (6, 2, false), (6, 3, false)],
        &[(0, 1, BondType::Single), (1, 2, BondType::Single)],
    );
    assert_eq!(canonical_smiles(&a, true), canonical_smiles(&b, true));
    assert_eq!(canonical_smiles(&a, true), "CCO");
}

#[test]
fn benzene_is_aromatic_lower_case() {
    let bonds: Vec<(usize, usize, BondType)> = (0..6)
        .map(|i| (i, (i + 1) % 6, BondType::Aromatic))
        .collect();
    let m = mol(&[(6, 1, true); 6], &bonds);
    assert_eq!(canonical_smiles(&m, true), "c1ccccc1");
}

#[test]
fn pyrrole_nitrogen_keeps_its_hydrogen_in_brackets() {
    let bonds: Vec<(usize, usize, BondType)> = (0..5)
        .map(|i| (i, (i + 1) % 5, BondType::Aromatic))
        .collect();
    let m = mol(
        &[
            (7, 1, true),
            (6, 1, true),
            (6, 1, true),
            (6, 1, true),
            (6, 1, true),
        ],
        &bonds,
    );
    let s = canonical_smiles(&m, true);
    assert!(s.contains("[nH]"), "{s}");
    assert_invariant(&m);
}

#[test]
fn charged_and_isotopic_atoms() {
    let mut ammonium = mol(&[(7, 4, false)], &[]);
    ammonium.atoms[0].charge = 1;
    assert_eq!(canonical_smiles(&ammonium, true), "[NH4+]");
    // [13CH3]C: isotope kept only in isomeric mode.
    let mut m = mol(&[(6, 3, false), (6, 3, false)], &[(0, 1, BondType::Single)]);
    m.atoms[0].isotope = Some(13);
    assert_eq!(canonical_smiles(&m, true), "C[13CH3]");
    assert_eq!(canonical_smiles(&m, false), "CC");
}

#[test]
fn map_numbers_and_fragments() {
    let mut m = mol(&[(11, 0, false), (17, 0, false), (6, 4, false)], &[]);
    m.atoms[0].charge = 1;
    m.atoms[0].no_implicit = true;
    m.atoms[1].charge = -1;
    m.atoms[2].map_number = Some(3);
    let s = canonical_smiles(&m, true);
    assert_eq!(s.split('.').count(), 3, "{s}");
    assert!(s.contains("[CH4:3]") && s.contains("[Na+]") && s.contains("[Cl-]"));
    assert_invariant(&m);
}

#[test]
fn tetrahedral_centre_and_its_mirror_image() {
    // F[C@@H](Cl)Br: atoms F, C, Cl, Br.
    let mut m = mol(
        &[(9, 0, false), (6, 1, false), (17, 0, false), (35, 0, false)],
        &[
            (0, 1, BondType::Single),
            (1, 2, BondType::Single),
            (1, 3, BondType::Single),
        ],
    );
    m.atoms[1].chiral = ChiralTag::Cw;
    let mut mirror = m.clone();
    mirror.atoms[1].chiral = ChiralTag::Ccw;
    assert_invariant(&m);
    assert_invariant(&mirror);
    assert_ne!(canonical_smiles(&m, true), canonical_smiles(&mirror, true));
    assert_eq!(
        canonical_smiles(&m, false),
        canonical_smiles(&mirror, false)
    );
    assert!(!canonical_smiles(&m, false).contains('@'));
}

#[test]
fn cis_and_trans_ring_isomers_differ() {
    let cis = dimethylcyclohexane(ChiralTag::Cw);
    let trans = dimethylcyclohexane(ChiralTag::Ccw);
    assert_invariant(&cis);
    assert_invariant(&trans);
    assert_ne!(canonical_smiles(&cis, true), canonical_smiles(&trans, true));
    assert_eq!(
        canonical_smiles(&cis, false),
        canonical_smiles(&trans, false)
    );
}

#[test]
fn double_bond_stereo() {
    let e = difluoroethene(true);
    let z = difluoroethene(false);
    assert_invariant(&e);
    assert_invariant(&z);
    let (se, sz) = (canonical_smiles(&e, true), canonical_smiles(&z, true));
    assert_ne!(se, sz);
    assert!(se.contains('/') || se.contains('\\'), "{se}");
    assert_eq!(canonical_smiles(&e, false), "FC=CF");
}

#[test]
fn directions_without_stereo_double_bond_are_dropped() {
    // F/C=C(/F)F has two identical substituents on one end: no stereo.
    let mut m = mol(
        &[
            (9, 0, false),
            (6, 1, false),
            (6, 0, false),
            (9, 0, false),
            (9, 0, false),
        ],
        &[],
    );
    m.add_bond(0, 1, BondType::Single, BondDir::EndUpRight);
    m.add_bond(1, 2, BondType::Double, BondDir::None);
    m.add_bond(2, 3, BondType::Single, BondDir::EndUpRight);
    m.add_bond(2, 4, BondType::Single, BondDir::None);
    assert_eq!(canonical_smiles(&m, true), "FC=C(F)F");
}

proptest! {
    #[test]
    fn relabelling_never_changes_the_string(seed in any::<u64>(), which in 0usize..4) {
        let m = match which {
            0 => dimethylcyclohexane(ChiralTag::Cw),
            1 => dimethylcyclohexane(ChiralTag::Ccw),
            2 => difluoroethene(true),
            _ => difluoroethene(false),
        };
        prop_assert_eq!(canonical_smiles(&shuffled(&m, seed), true), canonical_smiles(&m, true));
    }

    #[test]
    fn relabelling_keeps_non_tetrahedral_centres(seed in any::<u64>(), which in 0..NON_TETRAHEDRAL.len()) {
        let smiles = NON_TETRAHEDRAL[which];
        let m = mol_from_smiles(smiles).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(canonical_smiles(&shuffled(&m, seed), true), canonical_smiles(&m, true), "{}", smiles);
    }
}

/// Square-planar, trigonal-bipyramidal and octahedral centres: repeated ligands, implicit
/// hydrogens and vacant sites, ring closures, two centres, no permutation number.
const NON_TETRAHEDRAL: &[&str] = &[
    "F[Pt@SP2](Cl)(F)Cl",
    "N[Pt@SP1](N)(Cl)Cl",
    "F[Pt@SP1H](Cl)Br",
    "F[Pt@SP3H2]Cl",
    "C1CC[Pt@SP1]1(F)Cl",
    "F[Pt@SP](Cl)(Br)I",
    "F[As@TB9](F)(F)(Cl)Cl",
    "S[As@TB15](F)(Cl)(Br)N",
    "N[Co@OH3](N)(Cl)(N)(Cl)Cl",
    "F[Co@OH1](Cl)(Br)I",
    "[Co@OH1H2]1(F)CC1",
    "F[Pt@SP2](Cl)(F)C[Pt@SP3](F)(Cl)F",
];

#[test]
fn non_tetrahedral_centres_are_written_with_their_shape() {
    for smiles in NON_TETRAHEDRAL {
        let m = mol_from_smiles(smiles).unwrap_or_else(|e| panic!("{smiles}: {e}"));
        let iso = canonical_smiles(&m, true);
        let shape = Shape::of(
            m.atoms
                .iter()
                .map(|a| a.chiral)
                .find(|&t| Shape::of(t).is_some())
                .unwrap_or_default(),
        );
        let letters = shape.map(|(s, _)| s.letters()).unwrap_or("none");
        assert!(iso.contains(&format!("@{letters}")), "{smiles} -> {iso}");
        let flat = canonical_smiles(&m, false);
        assert!(!flat.contains('@'), "{smiles} -> {flat}");
    }
}

mod from_smiles {
    use super::super::canonical_from_smiles;

    fn canon(s: &str) -> String {
        match canonical_from_smiles(s, true) {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    /// Each group: different spellings of one molecule (RDKit gives one canonical string).
    const SAME: &[&[&str]] = &[
        &["c1ccccc1O", "Oc1ccccc1", "OC1=CC=CC=C1", "C1=CC(O)=CC=C1"],
        &["F/C=C/F", "F\\C=C\\F", "C(\\F)=C/F"],
        &[
            "C[C@@H]1CC[C@H](C)CC1",
            "C[C@H]1CC[C@@H](C)CC1",
            "C1C[C@@H](C)CC[C@H]1C",
        ],
        &["N[C@@H](C)C(=O)O", "C[C@H](N)C(=O)O", "OC(=O)[C@H](C)N"],
        &[
            "O[C@H]1[C@@H](O)[C@H](O)[C@@H](O)[C@H](O)[C@@H]1O",
            "[C@H]1(O)[C@@H](O)[C@H](O)[C@@H](O)[C@H](O)[C@@H]1O",
        ],
        &["[Na+].[Cl-]", "[Cl-].[Na+]"],
        &["c1cc[nH]c1", "C1=CNC=C1"],
        // cis-[PtF2Cl2] three ways; RDKit writes @SP1 or @SP3 depending on the atom order.
        &[
            "F[Pt@SP2](Cl)(F)Cl",
            "F[Pt@SP3](Cl)(F)Cl",
            "Cl[Pt@SP1](Cl)(F)F",
        ],
        // cis H2: the two hydrogens are interchangeable (RDKit tells them apart).
        &["[Pt@SP1H2](F)Cl", "F[Pt@SP2H2]Cl", "F[Pt@SP1H2]Cl"],
        &["F[Co@OH1](Cl)(Br)I", "F[Co@OH14](Cl)(Br)I"],
        // `~` (RDKit's unspecified bond) is a ring bond: the ring stays aromatic.
        &["C1=C~C=CC=C1", "c1~ccccc1"],
        // A `~` substituent does not stop double-bond stereo.
        &["C/C=C/1~CCCCCCC1", "C\\C=C\\1~CCCCCCC1"],
        &[
            "O[C@H]1C[C@@H](O)C[C@H](O)C1",
            "O[C@H]1C[C@H](O)C[C@H](O)C1",
        ],
    ];

    /// Pairs RDKit tells apart.
    const DIFFERENT: &[(&str, &str)] = &[
        ("F/C=C/F", "F/C=C\\F"),
        ("C[C@@H]1CC[C@H](C)CC1", "C[C@@H]1CC[C@@H](C)CC1"),
        ("N[C@@H](C)C(=O)O", "N[C@H](C)C(=O)O"),
        (
            "O[C@H]1C[C@@H](O)C[C@@H](O)C1",
            "O[C@H]1C[C@H](O)C[C@H](O)C1",
        ),
        ("[13CH3]C", "CC"),
        ("F[Pt@SP1](Cl)(F)Cl", "F[Pt@SP2](Cl)(F)Cl"),
        ("F[Pt@SP1H2]Cl", "F[Pt@SP3H2]Cl"),
        ("S[As@TB1](F)(Cl)(Br)N", "S[As@TB5](F)(Cl)(Br)N"),
        ("O[Co@OH1](F)(Cl)(Br)(I)N", "O[Co@OH12](F)(Cl)(Br)(I)N"),
        ("F[Pt@SP](Cl)(Br)I", "F[Pt](Cl)(Br)I"),
        // RDKit keeps an explicit map number 0: it is written, and the map makes the two
        // methyls differ, so the centre stays chiral.
        ("[CH4:0]", "C"),
        ("C[C@H](O)[CH3:0]", "C[C@@H](O)[CH3:0]"),
        // An aromatic bond between non-aromatic atoms: two H each, or one H and a radical.
        ("C:C", "[CH2]:[CH2]"),
        ("C/C=C/1~CCCCCCC1", "C/C=C\\1~CCCCCCC1"),
        ("CC:C", "[CH2]:[CH]C"),
    ];

    #[test]
    fn spellings_of_one_molecule_agree() {
        for group in SAME {
            let want = canon(group[0]);
            for s in &group[1..] {
                assert_eq!(canon(s), want, "{s} vs {}", group[0]);
            }
        }
    }

    #[test]
    fn stereoisomers_and_isotopologues_differ() {
        for (a, b) in DIFFERENT {
            assert_ne!(canon(a), canon(b), "{a} vs {b}");
        }
    }

    #[test]
    fn output_reads_back_to_itself() {
        for s in SAME
            .iter()
            .flat_map(|g| g.iter())
            .chain(DIFFERENT.iter().map(|p| &p.0))
        {
            let c = canon(s);
            assert_eq!(canon(&c), c, "{s}");
            let flat = canonical_from_smiles(&c, false).unwrap_or_default();
            assert!(!flat.contains('@') && !flat.contains('/'), "{flat}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(canonical_from_smiles("C1CC", true).is_err());
    }
}

/// Refinement as one full round over every atom until the class count stops changing: the
/// straightforward O(rounds x n log n) algorithm the incremental one must match exactly.
fn full_round_refine(g: &Graph, ranks: &mut [u32]) {
    let n = ranks.len();
    let classes = |r: &[u32]| r.iter().collect::<std::collections::HashSet<_>>().len();
    let mut count = classes(ranks);
    loop {
        let keys: Vec<(u32, u8, Vec<u64>)> = (0..n)
            .map(|a| {
                let mut k: Vec<u64> = g
                    .neighbors(a)
                    .iter()
                    .map(|&(nb, code)| (u64::from(ranks[nb]) << 3) | code)
                    .collect();
                k.sort_unstable();
                (ranks[a], g.stereo_of(a, &|x| ranks[x]), k)
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| keys[x].cmp(&keys[y]));
        let mut next = vec![0u32; n];
        for i in 0..n {
            next[order[i]] = if i > 0 && keys[order[i - 1]] == keys[order[i]] {
                next[order[i - 1]]
            } else {
                i as u32
            };
        }
        ranks.copy_from_slice(&next);
        let new_count = classes(ranks);
        if new_count == count {
            return;
        }
        count = new_count;
    }
}

/// The incremental refinement gives exactly the ranks of full rounds, stereo included, from
/// the search's starting points (one class; the base ranks with one atom individualized), on
/// the golden molecules and relabelled copies of them.
#[test]
fn incremental_refinement_matches_full_rounds() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/golden/canonical.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("golden canonical file");
    let mut checked = 0;
    for (i, line) in text.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let Some(smiles) = row["smiles"].as_str() else {
            continue;
        };
        let Ok(mol) = mol_from_smiles(smiles) else {
            continue;
        };
        let n = mol.atoms.len();
        for m in [shuffled(&mol, i as u64), mol] {
            for isomeric in [true, false] {
                let g = Graph::new(&m, isomeric);
                let mut starts = vec![vec![0u32; n]];
                for a in (0..n).step_by(n.div_ceil(3).max(1)) {
                    let mut r = g.base.clone();
                    individualize(&mut r, a);
                    starts.push(r);
                }
                for start in starts {
                    let (mut fast, mut slow) = (start.clone(), start);
                    g.refine(&mut fast, &mut Scratch::default());
                    full_round_refine(&g, &mut slow);
                    assert_eq!(fast, slow, "{smiles}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

/// Refinement work grows like n log n, not n^2: a chain or a ring individualized at one
/// atom refines in about n/2 rounds, and each round after the first looks only at the
/// neighbours of the atoms the previous round split off (full rounds: n^2/2 keys).
#[test]
fn refinement_work_is_not_quadratic() {
    let n = 4000;
    let chain = "C".repeat(n);
    let ring = format!("C1{}1", "C".repeat(n - 1));
    let chiral = format!("C{}C", "[C@H](F)".repeat(n / 2 - 1));
    for (smiles, splits_fully) in [(chain, true), (ring, false), (chiral, true)] {
        let mol = mol_from_smiles(&smiles).expect("valid SMILES");
        let g = Graph::new(&mol, true);
        let mut ranks = g.base.clone();
        individualize(&mut ranks, 0);
        let mut scratch = Scratch::default();
        g.refine(&mut ranks, &mut scratch);
        let atoms = mol.atoms.len();
        assert!(
            scratch.keys_computed() <= 8 * atoms,
            "{} keys for {atoms} atoms",
            scratch.keys_computed()
        );
        let mut sorted = ranks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        // A ring keeps its mirror symmetry through the individualized atom.
        assert_eq!(sorted.len() == atoms, splits_fully);
    }
}

#[test]
fn long_chain_and_ring() {
    let chain = "C".repeat(20_000);
    assert_eq!(
        canonical_smiles(&mol_from_smiles(&chain).expect("chain"), true),
        chain
    );
    let ring = format!("C1{}1", "C".repeat(1_999));
    assert_eq!(
        canonical_smiles(&mol_from_smiles(&ring).expect("ring"), false),
        ring
    );
}

/// Many interchangeable terminal pairs (a fluoropolymer: one tied pair per carbon, so the
/// search goes one level deep per pair and skips each second member through a twin swap):
/// the string does not depend on the atom order.
#[test]
fn many_twin_pairs_relabelled() {
    let smiles = format!("F{}F", "C(F)(F)".repeat(200));
    let mol = mol_from_smiles(&smiles).expect("valid SMILES");
    let expected = canonical_smiles(&mol, true);
    for seed in 0..3 {
        assert_eq!(canonical_smiles(&shuffled(&mol, seed), true), expected);
    }
}

/// A polymer with a symmetric ring per unit needs one search level per ring: the search
/// keeps its own stack, so a small thread stack suffices (the recursive search overflowed a
/// worker thread's stack at 8000 rings and aborted the run), and it holds one rank vector,
/// not one per level (64k atoms: 2.3 GB before).
#[test]
fn deep_search_needs_no_deep_stack() {
    let smiles = format!("C{}", "C(c1ccccc1)C".repeat(1500));
    let mol = mol_from_smiles(&smiles).expect("valid SMILES");
    let expected_len = smiles.len();
    let written = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || canonical_smiles(&mol, true))
        .expect("thread starts")
        .join()
        .expect("no stack overflow");
    assert_eq!(written.len(), expected_len);
    assert_eq!(
        canonical_smiles(&mol_from_smiles(&written).expect("reads back"), true),
        written
    );
}
