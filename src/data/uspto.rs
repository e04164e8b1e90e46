//! USPTO-50k in the Liu et al. (2017) form: `*_sources` lines are a reaction class token
//! `<RX_k>` and the product SMILES, `*_targets` lines the reactants; both are written one
//! character per token with spaces between. Line i of one pairs with line i of the other.
//!
//! Retrosynthesis: product graph -> reactant SELFIES. Forward: graph of the first reactant,
//! the other reactants as SELFIES text -> product SELFIES. The input is a `*_sources` file
//! (its `*_targets` file is found next to it; the split is named from `train`/`valid`/`test`
//! in the file name) or a folder with `liu2017_{train,valid,test}_{sources,targets}.txt`.

use std::path::{Path, PathBuf};

use super::prepare::{Examples, Task};
use super::prompts::{
    forward_question, retrosynthesis_question, Variant, FORWARD_QUESTION, RETROSYNTHESIS_QUESTION,
};
use super::table::read_lines;
use super::DataError;

/// SMILES from one Liu line: the `<RX_k>` token dropped and the spaces removed.
pub fn liu_smiles(line: &str) -> String {
    let rest = match line.trim_start().strip_prefix("<RX_") {
        Some(r) => r.split_once('>').map_or("", |(_, s)| s),
        None => line,
    };
    rest.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The (split name, sources, targets) files an input path stands for.
fn pairs(path: &Path) -> Result<Vec<(String, PathBuf, PathBuf)>, DataError> {
    if path.is_dir() {
        let mut out = Vec::new();
        for split in ["train", "valid", "test"] {
            let s = path.join(format!("liu2017_{split}_sources.txt"));
            let t = path.join(format!("liu2017_{split}_targets.txt"));
            if s.exists() && t.exists() {
                out.push((split.to_string(), s, t));
            }
        }
        if out.is_empty() {
            return Err(DataError::Usage(format!(
                "{}: no liu2017_{{train,valid,test}}_{{sources,targets}}.txt pair in this folder",
                path.display()
            )));
        }
        return Ok(out);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains("sources") {
        return Err(DataError::Usage(format!(
            "{}: give a Liu `*_sources` file (its `*_targets` file must sit next to it) or their folder",
            path.display()
        )));
    }
    let targets = path.with_file_name(name.replacen("sources", "targets", 1));
    let split = ["train", "valid", "test"]
        .into_iter()
        .find(|s| name.contains(s))
        .map_or_else(|| name.trim_end_matches(".txt").to_string(), str::to_string);
    Ok(vec![(split, path.to_path_buf(), targets)])
}

/// Reads Liu files for retrosynthesis or forward prediction.
pub fn read(path: &Path, task: Task, variant: Variant) -> Result<Examples, DataError> {
    let mut out = Examples::default();
    let mut base = 0usize;
    for (split, sources, targets) in pairs(path)? {
        let src = read_lines(&sources)?;
        let tgt = read_lines(&targets)?;
        let trim = |v: &[String]| {
            v.iter()
                .rposition(|l| !l.trim().is_empty())
                .map_or(0, |i| i + 1)
        };
        let (ns, nt) = (trim(&src), trim(&tgt));
        if ns != nt {
            return Err(DataError::format(
                &targets,
                0,
                format!(
                    "{nt} lines, but {} has {ns}: the files must pair line by line",
                    sources.display()
                ),
            ));
        }
        for i in 0..ns {
            let n = base + i + 1;
            out.rows += 1;
            let product = liu_smiles(&src[i]);
            let reactants = liu_smiles(&tgt[i]);
            let id = format!("{split}-{}", i + 1);
            let (graph, question, answer) = match task {
                Task::Retrosynthesis => {
                    if !out.check_molecule(n, &product) {
                        continue;
                    }
                    let Some(p) = out.selfies(n, &product) else {
                        continue;
                    };
                    let Some(r) = out.selfies(n, &reactants) else {
                        continue;
                    };
                    (
                        product,
                        retrosynthesis_question(variant, RETROSYNTHESIS_QUESTION, &p),
                        r,
                    )
                }
                _ => {
                    let parts: Vec<&str> = reactants.split('.').collect();
                    if !out.check_molecule(n, parts[0]) {
                        continue;
                    }
                    let mut sf = Vec::with_capacity(parts.len());
                    for p in &parts {
                        match out.selfies(n, p) {
                            Some(s) => sf.push(s),
                            None => break,
                        }
                    }
                    if sf.len() != parts.len() {
                        continue;
                    }
                    let Some(p) = out.selfies(n, &product) else {
                        continue;
                    };
                    (
                        parts[0].to_string(),
                        forward_question(variant, FORWARD_QUESTION, &sf),
                        p,
                    )
                }
            };
            out.push(
                n,
                task,
                id.clone(),
                graph,
                &question,
                answer,
                None,
                id,
                Some(split.clone()),
            );
        }
        base += src.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::liu_smiles;

    #[test]
    fn liu_lines_become_smiles() {
        assert_eq!(
            liu_smiles("<RX_6> N c 1 n c 2 [ n H ] c c 1"),
            "Nc1nc2[nH]cc1"
        );
        assert_eq!(liu_smiles("C l C . O"), "ClC.O");
    }
}
