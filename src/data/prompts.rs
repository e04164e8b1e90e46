//! Instruction wording per task, as in the reference (IDEA-XL/InstructMol and the
//! Mol-Instructions data it trains on), and the InstructMol-G / -GS variants.
//!
//! Where the reference's wording is not public (its MoleculeNet pickles), the questions
//! follow the paper's BBBP example ("Evaluate whether the given molecule is able to enter the
//! blood-brain barrier." -> "Yes"). The question is chosen from the task's pool by a seeded
//! hash of the record id, so preparation is deterministic.

use crate::rng::Rng;

/// InstructMol-G (graph only) or InstructMol-GS (graph plus the SELFIES text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// Graph tokens only.
    #[default]
    G,
    /// Graph tokens and the molecule's SELFIES string in the question.
    Gs,
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "g" => Ok(Variant::G),
            "gs" => Ok(Variant::Gs),
            _ => Err(format!("unknown variant `{s}` (expected g or gs)")),
        }
    }
}

/// Molecule description questions (ChEBI-20 and the stage-1 caption pairs), the reference's
/// `MOLCAP_INSTRUCTIONS`.
pub const DESCRIPTION_QUESTIONS: [&str; 7] = [
    "Could you give me a brief overview of this molecule?",
    "Could you provide a description of this molecule?",
    "Describe this molecule.",
    "Please give me some details about this molecule.",
    "Provide a brief overview of this molecule.",
    "Provide a description of this molecule.",
    "What can you tell me about this molecule?",
];

/// Yes/no question of a MoleculeNet classification task.
pub fn moleculenet_question(task: &str) -> Option<&'static str> {
    Some(match task {
        "bbbp" => "Evaluate whether the given molecule is able to enter the blood-brain barrier.",
        "bace" => "Evaluate whether the given molecule is able to inhibit human beta-secretase 1 (BACE-1).",
        "hiv" => "Evaluate whether the given molecule is able to inhibit HIV replication.",
        _ => return None,
    })
}

/// Answer text of a binary label (the reference's "Yes"/"No").
pub fn yes_no(label: bool) -> &'static str {
    if label {
        "Yes"
    } else {
        "No"
    }
}

/// Questions for a QM9 property (`homo`, `lumo`, `gap`), in Mol-Instructions' style; the
/// answer is the value in hartree.
pub fn qm9_questions(property: &str) -> Option<[&'static str; 3]> {
    Some(match property {
        "homo" => [
            "Could you give me the HOMO energy value of this molecule?",
            "What is the highest occupied molecular orbital (HOMO) energy of this molecule?",
            "Please provide the HOMO energy value for this molecule.",
        ],
        "lumo" => [
            "Could you give me the LUMO energy value of this molecule?",
            "What is the lowest unoccupied molecular orbital (LUMO) energy of this molecule?",
            "Please provide the LUMO energy value for this molecule.",
        ],
        "gap" => [
            "Could you give me the HOMO-LUMO gap energy value of this molecule?",
            "What is the energy separation between the HOMO and LUMO of this molecule?",
            "Please provide the gap between HOMO and LUMO of this molecule.",
        ],
        _ => return None,
    })
}

/// Retrosynthesis question (Mol-Instructions wording).
pub const RETROSYNTHESIS_QUESTION: &str =
    "Please suggest potential reactants used in the synthesis of the provided product.";

/// Forward reaction prediction question (Mol-Instructions wording).
pub const FORWARD_QUESTION: &str =
    "Based on the given reactants and reagents, suggest a possible product.";

/// Reagent prediction questions of the G variant (the reference's question pool; the product
/// SELFIES follows on a new line).
pub const REAGENT_QUESTIONS: [&str; 4] = [
    "Can you suggest some possible reagents that could have been used in the following chemical reaction?",
    "Give some possible reagents that could have been used in the following chemical reaction.",
    "Please propose potential reagents that might have been utilized in the provided chemical reaction.",
    "Please provide possible reagents based on the following chemical reaction.",
];

/// Picks one of `pool` for record `id`: a pure function of (seed, id).
pub fn pick<'a>(pool: &[&'a str], seed: u64, id: &str) -> &'a str {
    let mut rng = Rng::derive(seed, &[hash_str(id)]);
    pool[rng.below(pool.len())]
}

/// FNV-1a hash of a record id: turns the id into a seed path.
fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The GS variant's SELFIES sentence for a molecule, appended to the question.
pub fn selfies_sentence(selfies: &str) -> String {
    format!(" The compound SELFIES sequence is: {selfies}")
}

/// Description question; GS appends the SELFIES sentence with a closing period, as the
/// reference's captioning script does.
pub fn description_question(variant: Variant, seed: u64, id: &str, selfies: &str) -> String {
    let q = pick(&DESCRIPTION_QUESTIONS, seed, id).to_string();
    match variant {
        Variant::G => q,
        Variant::Gs => format!("{q}{}.", selfies_sentence(selfies)),
    }
}

/// Appends the SELFIES sentence to `question` for GS.
pub fn with_selfies(question: &str, variant: Variant, selfies: &str) -> String {
    match variant {
        Variant::G => question.to_string(),
        Variant::Gs => format!("{question}{}", selfies_sentence(selfies)),
    }
}

/// Retrosynthesis question for a product; GS names the product's SELFIES.
pub fn retrosynthesis_question(
    variant: Variant,
    instruction: &str,
    product_selfies: &str,
) -> String {
    match variant {
        Variant::G => instruction.to_string(),
        Variant::Gs => format!("{instruction} The product is: {product_selfies}"),
    }
}

/// Forward prediction question. The graph is the first reactant; G lists the other reactants'
/// SELFIES, GS gives all of them.
pub fn forward_question(variant: Variant, instruction: &str, reactants: &[String]) -> String {
    match variant {
        Variant::G if reactants.len() > 1 => format!(
            "{instruction} The other joint reactants are: {}",
            reactants[1..].join(",")
        ),
        Variant::G => instruction.to_string(),
        Variant::Gs => format!("{instruction} {}", reactants.join(".")),
    }
}

/// Reagent prediction question for `reactants>>product` (SELFIES). G asks with the reference's
/// pool and gives the product; GS keeps the dataset's instruction and gives the reaction.
pub fn reagent_question(
    variant: Variant,
    instruction: &str,
    reaction: &str,
    product: &str,
    seed: u64,
    id: &str,
) -> String {
    match variant {
        Variant::G => format!(
            "{}\nThe product is {product}",
            pick(&REAGENT_QUESTIONS, seed, id)
        ),
        Variant::Gs => format!("{instruction} The reaction is {reaction}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_depends_on_seed_and_id_only() {
        let a = pick(&DESCRIPTION_QUESTIONS, 1, "123");
        assert_eq!(a, pick(&DESCRIPTION_QUESTIONS, 1, "123"));
        let all: std::collections::BTreeSet<&str> = (0..200)
            .map(|i| pick(&DESCRIPTION_QUESTIONS, 1, &i.to_string()))
            .collect();
        assert_eq!(all.len(), DESCRIPTION_QUESTIONS.len());
    }

    #[test]
    fn gs_adds_selfies() {
        let q = description_question(Variant::Gs, 0, "1", "[C][O]");
        assert!(
            q.ends_with(" The compound SELFIES sequence is: [C][O]."),
            "{q}"
        );
        let g = description_question(Variant::G, 0, "1", "[C][O]");
        assert!(!g.contains("SELFIES"));
        let f = forward_question(
            Variant::G,
            FORWARD_QUESTION,
            &["[C]".into(), "[O]".into(), "[N]".into()],
        );
        assert!(f.ends_with("The other joint reactants are: [O],[N]"), "{f}");
    }
}
