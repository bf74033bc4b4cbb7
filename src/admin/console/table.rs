//! Result sets of the console: RowDescription, DataRows and CommandComplete in the text
//! format, as PgBouncer sends them (numbers as int8, everything else as text).

use bytes::{BufMut, BytesMut};

use crate::protocol::io::message;

/// A column's type as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

impl Kind {
    fn oid(self) -> u32 {
        match self {
            Self::Int => 20,
            Self::Text => 25,
        }
    }
}

/// One cell: text, a number, or NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}
impl From<std::sync::Arc<str>> for Cell {
    fn from(s: std::sync::Arc<str>) -> Self {
        Self::Text(s.to_string())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}
impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}
impl From<usize> for Cell {
    fn from(n: usize) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<u64> for Cell {
    fn from(n: u64) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Cell {
    fn from(n: u32) -> Self {
        Self::Int(i64::from(n))
    }
}
impl From<i32> for Cell {
    fn from(n: i32) -> Self {
        Self::Int(i64::from(n))
    }
}
impl From<u16> for Cell {
    fn from(n: u16) -> Self {
        Self::Int(i64::from(n))
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A result set.
pub struct Table {
    pub columns: Vec<(&'static str, Kind)>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    #[must_use]
    pub fn new(columns: &[(&'static str, Kind)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The cell of `column` in `row`, for tests.
    #[must_use]
    pub fn get(&self, row: usize, column: &str) -> Option<&Cell> {
        let i = self.columns.iter().position(|(c, _)| *c == column)?;
        self.rows.get(row).and_then(|r| r.get(i))
    }

    /// The same rows with only `columns` (in that order; unknown names are skipped).
    #[must_use]
    pub fn project(&self, columns: &[&str]) -> Self {
        let idx: Vec<usize> = columns
            .iter()
            .filter_map(|c| self.columns.iter().position(|(n, _)| n == c))
            .collect();
        Self {
            columns: idx.iter().map(|&i| self.columns[i]).collect(),
            rows: self
                .rows
                .iter()
                .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
                .collect(),
        }
    }

    /// RowDescription, DataRows, CommandComplete `SHOW`.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut desc = BytesMut::new();
        desc.put_u16(u16::try_from(self.columns.len()).unwrap_or(u16::MAX));
        for (name, kind) in &self.columns {
            desc.put_slice(name.as_bytes());
            desc.put_u8(0);
            desc.put_u32(0); // table oid
            desc.put_u16(0); // column number
            desc.put_u32(kind.oid());
            desc.put_i16(if *kind == Kind::Int { 8 } else { -1 });
            desc.put_i32(-1); // type modifier
            desc.put_u16(0); // text format
        }
        out.put_slice(&message(b'T', &desc));
        for row in &self.rows {
            let mut data = BytesMut::new();
            data.put_u16(u16::try_from(row.len()).unwrap_or(u16::MAX));
            for cell in row {
                let text = match cell {
                    Cell::Null => {
                        data.put_i32(-1);
                        continue;
                    }
                    Cell::Text(s) => s.clone(),
                    Cell::Int(n) => n.to_string(),
                };
                data.put_u32(u32::try_from(text.len()).unwrap_or(u32::MAX));
                data.put_slice(text.as_bytes());
            }
            out.put_slice(&message(b'D', &data));
        }
        complete(out, "SHOW");
    }
}

/// CommandComplete with `tag`.
pub fn complete(out: &mut BytesMut, tag: &str) {
    let mut body = tag.as_bytes().to_vec();
    body.push(0);
    out.put_slice(&message(b'C', &body));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_description_rows_and_nulls() {
        let mut t = Table::new(&[("name", Kind::Text), ("n", Kind::Int)]);
        t.push(vec!["a".into(), 7i64.into()]);
        t.push(vec![Cell::Null, Cell::Null]);
        let mut out = BytesMut::new();
        t.encode(&mut out);
        assert_eq!(out[0], b'T');
        let tags: Vec<u8> = {
            let mut v = Vec::new();
            let mut i = 0;
            while i < out.len() {
                v.push(out[i]);
                let len = u32::from_be_bytes([out[i + 1], out[i + 2], out[i + 3], out[i + 4]]);
                i += 1 + len as usize;
            }
            v
        };
        assert_eq!(tags, b"TDDC");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("name\0"));
        assert!(text.contains("SHOW\0"));
        assert_eq!(t.get(0, "n"), Some(&Cell::Int(7)));
    }
}
