//! Name search for services and places: forgiving about case, umlauts and word order.

/// Folds a text for matching: lower case, umlauts and their two-letter spellings alike
/// ("Göttingen", "Goettingen" and "gottingen" match), punctuation to spaces.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' | 'á' | 'à' | 'â' => out.push('a'),
            'ö' | 'ó' | 'ò' | 'ô' => out.push('o'),
            'ü' | 'ú' | 'ù' | 'û' => out.push('u'),
            'é' | 'è' | 'ê' => out.push('e'),
            'ß' => out.push_str("ss"),
            c if c.is_alphanumeric() => out.push(c),
            _ => out.push(' '),
        }
    }
    out.replace("ae", "a").replace("oe", "o").replace("ue", "u")
}

/// A searchable text, folded once when the directory is loaded.
#[derive(Debug, Clone)]
pub struct Haystack {
    folded: String,
    words: Vec<(usize, usize)>,
    /// Each text on its own, for recognising an exact name.
    whole: Vec<String>,
}

impl Haystack {
    pub fn new(texts: &[&str]) -> Self {
        let whole: Vec<String> = texts
            .iter()
            .map(|t| fold(t).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let folded = fold(&texts.join(" "));
        let mut words = Vec::new();
        let mut start = None;
        for (i, b) in folded.bytes().enumerate() {
            match (b == b' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    words.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            words.push((s, folded.len()));
        }
        Haystack {
            folded,
            words,
            whole,
        }
    }

    fn words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().map(|&(s, e)| &self.folded[s..e])
    }

    /// A score for how well `query` matches, or `None`. Every query word must match.
    pub fn score(&self, query: &Query) -> Option<u32> {
        if query.terms.is_empty() {
            return None;
        }
        let mut score = 0;
        for term in &query.terms {
            let best = self.words().filter_map(|w| term.score(w)).max()?;
            score += best;
        }
        let query_whole = query
            .folded
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if self.whole.contains(&query_whole) {
            score += 100;
        }
        Some(score)
    }
}

/// A parsed search: words, each optionally with `*` wildcards at either end
/// (the Routing API's `areaSearchexpression` syntax). Without wildcards a word matches the
/// beginning of a word, as people type.
#[derive(Debug, Clone)]
pub struct Query {
    folded: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone)]
struct Term {
    text: String,
    leading_star: bool,
    trailing_star: bool,
}

impl Term {
    fn score(&self, word: &str) -> Option<u32> {
        if word == self.text {
            Some(10)
        } else if self.leading_star && (word.ends_with(&self.text) || word.contains(&self.text)) {
            Some(5)
        } else if (!self.leading_star || self.trailing_star) && word.starts_with(&self.text) {
            Some(6)
        } else {
            None
        }
    }
}

impl Query {
    pub fn parse(text: &str) -> Self {
        let mut terms = Vec::new();
        for raw in text.split_whitespace() {
            let leading_star = raw.starts_with('*');
            let trailing_star = raw.ends_with('*');
            for piece in fold(raw.trim_matches('*')).split_whitespace() {
                terms.push(Term {
                    text: piece.to_owned(),
                    leading_star,
                    trailing_star,
                });
            }
        }
        Query {
            folded: fold(text.trim_matches('*')),
            terms,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_umlauts_both_ways() {
        assert_eq!(fold("Göttingen"), fold("Goettingen"));
        assert_eq!(fold("Straße"), "strasse");
    }

    #[test]
    fn word_order_and_prefixes() {
        let h = Haystack::new(&["Wohnsitz Anmeldung"]);
        assert!(h.score(&Query::parse("anmeldung wohn")).is_some());
        assert!(h.score(&Query::parse("abmeldung")).is_none());
        let exact = h.score(&Query::parse("Wohnsitz Anmeldung")).expect("match");
        let partial = h.score(&Query::parse("Wohnsitz Anm")).expect("match");
        assert!(exact > partial);
    }

    #[test]
    fn wildcards() {
        let h = Haystack::new(&["Magdeburg"]);
        assert!(h.score(&Query::parse("Mag*")).is_some());
        assert!(h.score(&Query::parse("*burg")).is_some());
        assert!(h.score(&Query::parse("burg")).is_none());
    }
}
