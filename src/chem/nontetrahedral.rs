//! Non-tetrahedral stereo (`@SPn`, `@TBn`, `@OHn`): what a permutation number means and how
//! to re-express it for another order of the same ligands.
//!
//! A centre's ligands are listed in some order (the SMILES order, or the stored bond order,
//! with a placeholder for each implicit hydrogen or missing ligand). Permutation `n` of a
//! shape places the listed ligands on the vertices of the polyhedron; two (listing, number)
//! pairs describe the same centre when a proper rotation of the polyhedron takes one
//! placement onto the other. Numbering follows OpenSMILES as RDKit implements it.

use std::sync::OnceLock;

use super::ChiralTag;

/// The three non-tetrahedral shapes with numbered permutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Square planar (`@SP1`..`@SP3`), 4 ligands.
    SquarePlanar,
    /// Trigonal bipyramidal (`@TB1`..`@TB20`), 5 ligands.
    TrigonalBipyramidal,
    /// Octahedral (`@OH1`..`@OH30`), 6 ligands.
    Octahedral,
}

/// Row `n - 1`: an order of the listed ligands that, read with permutation 1, describes the
/// same centre as the listed order read with permutation `n` (the first such order in
/// lexicographic order). Permutation 1 places ligand `i` on vertex `i`: for the square, the
/// vertices in turn around it; for the bipyramid, axial 0, equatorial 1-2-3 anticlockwise
/// seen from 0, axial 4; for the octahedron, axial 0, equatorial 1-2-3-4 anticlockwise seen
/// from 0, axial 5. Checked against RDKit by tests/chem_nontetrahedral.rs.
const SQUARE_PLANAR: [[u8; 4]; 3] = [[0, 1, 2, 3], [0, 2, 1, 3], [0, 1, 3, 2]];

/// See [`SQUARE_PLANAR`].
const TRIGONAL_BIPYRAMIDAL: [[u8; 5]; 20] = [
    [0, 1, 2, 3, 4],
    [0, 1, 3, 2, 4],
    [0, 1, 2, 4, 3],
    [0, 1, 4, 2, 3],
    [0, 1, 3, 4, 2],
    [0, 1, 4, 3, 2],
    [0, 2, 3, 4, 1],
    [0, 2, 4, 3, 1],
    [1, 0, 2, 3, 4],
    [1, 0, 2, 4, 3],
    [1, 0, 3, 2, 4],
    [1, 0, 4, 2, 3],
    [1, 0, 3, 4, 2],
    [1, 0, 4, 3, 2],
    [2, 0, 1, 3, 4],
    [2, 0, 1, 4, 3],
    [3, 0, 1, 2, 4],
    [3, 0, 2, 1, 4],
    [2, 0, 4, 1, 3],
    [2, 0, 3, 1, 4],
];

/// See [`SQUARE_PLANAR`].
const OCTAHEDRAL: [[u8; 6]; 30] = [
    [0, 1, 2, 3, 4, 5],
    [0, 1, 4, 3, 2, 5],
    [0, 1, 2, 3, 5, 4],
    [0, 1, 2, 4, 3, 5],
    [0, 1, 2, 5, 3, 4],
    [0, 1, 2, 4, 5, 3],
    [0, 1, 2, 5, 4, 3],
    [0, 1, 3, 2, 4, 5],
    [0, 1, 3, 2, 5, 4],
    [0, 1, 4, 2, 3, 5],
    [0, 1, 5, 2, 3, 4],
    [0, 1, 4, 2, 5, 3],
    [0, 1, 5, 2, 4, 3],
    [0, 1, 3, 4, 2, 5],
    [0, 1, 3, 5, 2, 4],
    [0, 1, 5, 3, 2, 4],
    [0, 1, 4, 5, 2, 3],
    [0, 1, 5, 4, 2, 3],
    [0, 1, 3, 4, 5, 2],
    [0, 1, 3, 5, 4, 2],
    [0, 1, 4, 3, 5, 2],
    [0, 1, 5, 3, 4, 2],
    [0, 1, 4, 5, 3, 2],
    [0, 1, 5, 4, 3, 2],
    [0, 2, 3, 4, 5, 1],
    [0, 2, 3, 5, 4, 1],
    [0, 2, 4, 3, 5, 1],
    [0, 2, 5, 3, 4, 1],
    [0, 2, 4, 5, 3, 1],
    [0, 2, 5, 4, 3, 1],
];

impl Shape {
    /// The shape and permutation number of a chiral tag (0 = no number given), if it is a
    /// square-planar, trigonal-bipyramidal or octahedral tag.
    pub fn of(tag: ChiralTag) -> Option<(Shape, u8)> {
        match tag {
            ChiralTag::SquarePlanar(n) => Some((Shape::SquarePlanar, n)),
            ChiralTag::TrigonalBipyramidal(n) => Some((Shape::TrigonalBipyramidal, n)),
            ChiralTag::Octahedral(n) => Some((Shape::Octahedral, n)),
            _ => None,
        }
    }

    /// The chiral tag of this shape with permutation number `n`.
    pub fn tag(self, n: u8) -> ChiralTag {
        match self {
            Shape::SquarePlanar => ChiralTag::SquarePlanar(n),
            Shape::TrigonalBipyramidal => ChiralTag::TrigonalBipyramidal(n),
            Shape::Octahedral => ChiralTag::Octahedral(n),
        }
    }

    /// The SMILES reading order of a centre's ligands: `written` (its neighbours in the
    /// order the SMILES names them) with one `placeholder` per missing ligand (implicit
    /// hydrogen or vacant site) at the front for an atom that starts its fragment, else
    /// right after the preceding atom, as RDKit reads and writes them. `None` when there
    /// are more neighbours than positions.
    pub fn reading_order<T: Copy>(
        self,
        written: &[T],
        starts_fragment: bool,
        placeholder: T,
    ) -> Option<Vec<T>> {
        let missing = self.size().checked_sub(written.len())?;
        let at = if starts_fragment {
            0
        } else {
            written.len().min(1)
        };
        let mut order = Vec::with_capacity(self.size());
        order.extend_from_slice(&written[..at]);
        order.extend(std::iter::repeat_n(placeholder, missing));
        order.extend_from_slice(&written[at..]);
        Some(order)
    }

    /// The stored order of a centre's ligands: its bonds in stored order, then one
    /// `placeholder` per missing ligand (RDKit's `_chiralPermutation` convention). `None`
    /// when there are more bonds than positions.
    pub fn stored_order<T: Copy>(self, bonds: &[T], placeholder: T) -> Option<Vec<T>> {
        let missing = self.size().checked_sub(bonds.len())?;
        let mut order = bonds.to_vec();
        order.extend(std::iter::repeat_n(placeholder, missing));
        Some(order)
    }

    /// Number of ligand positions (4, 5 or 6).
    pub fn size(self) -> usize {
        match self {
            Shape::SquarePlanar => 4,
            Shape::TrigonalBipyramidal => 5,
            Shape::Octahedral => 6,
        }
    }

    /// Number of permutations (3, 20 or 30).
    pub fn count(self) -> u8 {
        match self {
            Shape::SquarePlanar => 3,
            Shape::TrigonalBipyramidal => 20,
            Shape::Octahedral => 30,
        }
    }

    /// The SMILES tag letters (`SP`, `TB`, `OH`).
    pub fn letters(self) -> &'static str {
        match self {
            Shape::SquarePlanar => "SP",
            Shape::TrigonalBipyramidal => "TB",
            Shape::Octahedral => "OH",
        }
    }

    /// Row `n - 1` of the shape's table (`n` in `1..=count`).
    fn order(self, n: u8) -> &'static [u8] {
        let i = usize::from(n - 1);
        match self {
            Shape::SquarePlanar => &SQUARE_PLANAR[i],
            Shape::TrigonalBipyramidal => &TRIGONAL_BIPYRAMIDAL[i],
            Shape::Octahedral => &OCTAHEDRAL[i],
        }
    }

    /// Generators of the rotation group, as vertex maps (vertex `i` goes to `g[i]`).
    fn generators(self) -> &'static [&'static [u8]] {
        match self {
            // Quarter turn in the plane; half turn about the 0-2 diagonal.
            Shape::SquarePlanar => &[&[1, 2, 3, 0], &[0, 3, 2, 1]],
            // Third turn about the axis; half turn about the axis through vertex 1.
            Shape::TrigonalBipyramidal => &[&[0, 2, 3, 1, 4], &[4, 1, 3, 2, 0]],
            // Quarter turns about the 0-5 axis and about the 1-3 axis.
            Shape::Octahedral => &[&[0, 2, 3, 4, 1, 5], &[2, 1, 5, 3, 0, 4]],
        }
    }

    /// All proper rotations of the polyhedron as vertex maps (8, 6 or 24 of them).
    pub fn rotations(self) -> &'static [Vec<u8>] {
        static GROUPS: OnceLock<[Vec<Vec<u8>>; 3]> = OnceLock::new();
        let groups = GROUPS.get_or_init(|| {
            [
                Shape::SquarePlanar,
                Shape::TrigonalBipyramidal,
                Shape::Octahedral,
            ]
            .map(Shape::close_group)
        });
        match self {
            Shape::SquarePlanar => &groups[0],
            Shape::TrigonalBipyramidal => &groups[1],
            Shape::Octahedral => &groups[2],
        }
    }

    fn close_group(self) -> Vec<Vec<u8>> {
        let identity: Vec<u8> = (0..self.size() as u8).collect();
        let mut group = vec![identity];
        let mut i = 0;
        while i < group.len() {
            for g in self.generators() {
                let next: Vec<u8> = group[i].iter().map(|&v| g[usize::from(v)]).collect();
                if !group.contains(&next) {
                    group.push(next);
                }
            }
            i += 1;
        }
        group
    }

    /// Ligands on the vertices for `listing` read with permutation `n`.
    fn placement<T: Copy>(self, n: u8, listing: &[T]) -> Vec<T> {
        self.order(n)
            .iter()
            .map(|&i| listing[usize::from(i)])
            .collect()
    }

    /// Whether `listing_a` read with permutation `a` and `listing_b` read with `b` describe
    /// the same centre. Listings hold ligand identities (equal values are interchangeable,
    /// e.g. two implicit hydrogens) and must have [`Shape::size`] entries; numbers outside
    /// `1..=count` never match.
    pub fn same<T: Copy + PartialEq>(self, a: u8, listing_a: &[T], b: u8, listing_b: &[T]) -> bool {
        let k = self.size();
        if !(1..=self.count()).contains(&a)
            || !(1..=self.count()).contains(&b)
            || listing_a.len() != k
            || listing_b.len() != k
        {
            return false;
        }
        let pa = self.placement(a, listing_a);
        let pb = self.placement(b, listing_b);
        self.rotations()
            .iter()
            .any(|g| (0..k).all(|i| pb[i] == pa[usize::from(g[i])]))
    }

    /// The smallest permutation number that describes, for the ligand order `to`, the same
    /// centre as permutation `n` does for `from`; `None` when `n` is out of range or `to`
    /// is not a reordering of `from`.
    pub fn reexpress<T: Copy + PartialEq>(self, n: u8, from: &[T], to: &[T]) -> Option<u8> {
        (1..=self.count()).find(|&m| self.same(n, from, m, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPES: [Shape; 3] = [
        Shape::SquarePlanar,
        Shape::TrigonalBipyramidal,
        Shape::Octahedral,
    ];

    #[test]
    fn rotation_groups_have_the_polyhedra_orders() {
        let orders: Vec<usize> = SHAPES.iter().map(|s| s.rotations().len()).collect();
        assert_eq!(orders, [8, 6, 24]);
    }

    #[test]
    fn numbers_are_distinct_centres_for_distinct_ligands() {
        for shape in SHAPES {
            let ligands: Vec<usize> = (0..shape.size()).collect();
            for a in 1..=shape.count() {
                for b in 1..=shape.count() {
                    assert_eq!(
                        shape.same(a, &ligands, b, &ligands),
                        a == b,
                        "{shape:?} {a} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn reexpressing_there_and_back_is_the_identity() {
        let from = [0usize, 1, 2, 3, 4, 5];
        let to = [3usize, 5, 0, 4, 1, 2];
        for shape in SHAPES {
            let k = shape.size();
            let to: Vec<usize> = to.iter().copied().filter(|&x| x < k).collect();
            for n in 1..=shape.count() {
                let m = shape.reexpress(n, &from[..k], &to);
                let back = m.and_then(|m| shape.reexpress(m, &to, &from[..k]));
                assert_eq!(back, Some(n), "{shape:?} {n}");
            }
        }
    }

    #[test]
    fn square_planar_cis_and_trans() {
        // F, Cl, F, Cl: @SP1 puts the fluorines trans, @SP2 and @SP3 cis.
        let sp = Shape::SquarePlanar;
        let l = ['F', 'C', 'F', 'C'];
        assert!(sp.same(2, &l, 3, &l));
        assert!(!sp.same(1, &l, 2, &l));
        assert_eq!(sp.reexpress(3, &l, &['F', 'F', 'C', 'C']), Some(1));
        assert_eq!(sp.reexpress(9, &l, &l), None);
        assert_eq!(sp.reexpress(1, &l, &['F', 'F', 'F', 'C']), None);
    }
}
