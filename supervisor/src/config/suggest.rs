//! "did you mean …?" for misspelt keys and values: the closest candidate by
//! edit distance, when it is close enough to be a plausible typo.
//!
//! Pure functions; called wherever the loader rejects an unknown word.

/// The candidate closest to `word` (case-insensitive edit distance),
/// if it is within a third of the word's length (at least 1, at most 3 edits).
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)` or nothing.
pub(super) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

/// Edit distance over chars, counting a swap of two neighbours as one edit
/// (optimal string alignment), so "TREM" is one edit from "TERM".
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("autorestrt", "autorestart"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("trem", "term"), 1);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let keys = ["autostart", "autorestart", "command"];
        assert_eq!(closest("autorestrt", &keys), Some("autorestart"));
        assert_eq!(closest("AUTOSTART", &keys), Some("autostart"));
        assert_eq!(closest("comand", &keys), Some("command"));
        assert_eq!(closest("xyz", &keys), None);
        assert_eq!(did_you_mean("zzzzzzzz", &keys), "");
    }
}
