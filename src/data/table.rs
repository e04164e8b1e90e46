//! Line readers for the raw formats: CSV (optionally gzipped) and TSV with a header row.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::DataError;

/// A delimited text file with a header row: the column names and the data rows, each with
/// its 1-based line number.
#[derive(Debug, Clone)]
pub struct Table {
    /// Column names from the header.
    pub header: Vec<String>,
    /// Data rows (line number, fields); empty lines are skipped.
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    /// Index of column `name`, or a format error naming the columns that exist.
    pub fn column(&self, path: &Path, name: &str) -> Result<usize, DataError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            DataError::format(
                path,
                1,
                format!(
                    "no column `{name}` in the header (columns: {})",
                    self.header.join(", ")
                ),
            )
        })
    }
}

/// Reads a whole text file, gunzipping it when the name ends in `.gz`. A truncated or corrupt
/// gzip stream, or bytes that are not UTF-8, are errors naming the file and where.
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                DataError::format(
                    path,
                    0,
                    format!(
                        "the gzip data is truncated or corrupt ({e}); check the file with `gzip -t` \
                         or download it again"
                    ),
                )
            })?;
    } else {
        BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::io(path, e))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at
            - bytes[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
        DataError::format(
            path,
            line,
            format!(
                "not UTF-8 text: invalid byte at byte {} of the line (file offset {at}); \
                 convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
                column + 1
            ),
        )
    })
}

/// Reads the lines of a text file (gunzipped for `.gz`), without line terminators.
pub fn read_lines(path: &Path) -> Result<Vec<String>, DataError> {
    let text = read_text(path)?;
    Ok(BufReader::new(text.as_bytes())
        .lines()
        .map(|l| l.unwrap_or_default())
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect())
}

/// Reads a CSV file (RFC 4180 quoting) with a header row.
pub fn read_csv(path: &Path) -> Result<Table, DataError> {
    read_table(path, |line, n| {
        split_csv(line).map_err(|m| DataError::format(path, n, m))
    })
}

fn read_table(
    path: &Path,
    split: impl Fn(&str, usize) -> Result<Vec<String>, DataError>,
) -> Result<Table, DataError> {
    let lines = read_lines(path)?;
    let mut iter = lines.iter().enumerate();
    let header = match iter.next() {
        Some((_, h)) => split(h.trim_start_matches('\u{feff}'), 1)?,
        None => {
            return Err(DataError::format(
                path,
                0,
                "the file is empty (expected a header row)",
            ))
        }
    };
    let mut rows = Vec::new();
    for (i, line) in iter {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(line, i + 1)?;
        if fields.len() != header.len() {
            return Err(DataError::format(
                path,
                i + 1,
                format!("{} fields, the header has {}", fields.len(), header.len()),
            ));
        }
        rows.push((i + 1, fields));
    }
    Ok(Table { header, rows })
}

/// Splits one CSV line; quoted fields may contain commas and doubled quotes.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == ',' {
            fields.push(std::mem::take(&mut field));
            at_start = true;
            continue;
        } else if c == '"' && at_start {
            quoted = true;
        } else {
            field.push(c);
        }
        at_start = false;
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::split_csv;

    #[test]
    fn csv_quotes() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\"").unwrap(),
            ["a", "b,c", "d\"e"]
        );
        assert_eq!(split_csv(",x,").unwrap(), ["", "x", ""]);
        assert!(split_csv("\"open").is_err());
    }
}
