//! A faithful Rust port of VADER, the rule-based sentiment analyser of Hutto & Gilbert (2014),
//! following the reference Python implementation `vaderSentiment` 3.3.2 rule for rule: the
//! lexicon, booster and dampener words, negation (including "no", "never so", "without doubt",
//! "least"), the contrastive "but", ALL-CAPS emphasis, `!`/`?` emphasis, special-case idioms,
//! emoji descriptions, and the compound normalisation with alpha = 15.
//!
//! ```
//! use shopstream_sentiment::{analyzer, Label};
//! let s = analyzer().polarity_scores("Absolutely love this sofa! It's so comfortable and stylish.");
//! assert_eq!(s.label(), Label::Positive);
//! assert_eq!(s.compound, 0.8758); // as vaderSentiment 3.3.2 scores it
//! ```
//!
//! Scores are rounded exactly as the reference rounds them (`compound` to 4 decimals, the
//! proportions to 3), and [`Label`] uses the customary thresholds on the rounded compound:
//! positive when `compound >= 0.05`, negative when `compound <= -0.05`, else neutral.
//!
//! Quirks of the reference are kept on purpose so results agree exactly, for example the
//! `but` rule that rescales the *first* equal score, the operator precedence of the 3-word
//! "never so/this" check, and that an emoji description is glued to a following character.
//!
//! The lexicons (`vader_lexicon.txt`, `emoji_utf8_lexicon.txt`) are copied from the
//! `vaderSentiment` 3.3.2 package, MIT licensed (C) 2016 C.J. Hutto; the license text ships
//! in `src/data/LICENSE-vaderSentiment.txt`.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::sync::LazyLock;

const RAW_LEXICON: &str = include_str!("data/vader_lexicon.txt");
const RAW_EMOJI_LEXICON: &str = include_str!("data/emoji_utf8_lexicon.txt");

/// Empirical rating increase of a booster word.
const B_INCR: f64 = 0.293;
/// Empirical rating decrease of a dampener word.
const B_DECR: f64 = -0.293;
/// Empirical rating increase of an ALL-CAPS word among others that are not.
const C_INCR: f64 = 0.733;
/// Scalar applied to a negated word.
const N_SCALAR: f64 = -0.74;
/// Normalisation constant of the compound score.
const ALPHA: f64 = 15.0;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTER_INCR: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTER_DECR: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

/// Special-case idioms and phrases containing lexicon words, with the valence they take.
const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

/// ASCII punctuation, Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The scores of one text, rounded as the reference rounds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Share of negative sentiment, rounded to 3 decimals.
    pub neg: f64,
    /// Share of neutral words, rounded to 3 decimals.
    pub neu: f64,
    /// Share of positive sentiment, rounded to 3 decimals.
    pub pos: f64,
    /// Normalised, weighted composite score in `[-1, 1]`, rounded to 4 decimals.
    pub compound: f64,
}

impl Scores {
    /// The label of these scores (see [`Label::from_compound`]).
    pub fn label(&self) -> Label {
        Label::from_compound(self.compound)
    }
}

/// Sentiment class of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// `compound >= 0.05`.
    Positive,
    /// `-0.05 < compound < 0.05`.
    Neutral,
    /// `compound <= -0.05`.
    Negative,
}

impl Label {
    /// Every label, positive first.
    pub const ALL: [Label; 3] = [Label::Positive, Label::Neutral, Label::Negative];

    /// The customary VADER thresholds: positive at `>= 0.05`, negative at `<= -0.05`.
    pub fn from_compound(compound: f64) -> Label {
        if compound >= 0.05 {
            Label::Positive
        } else if compound <= -0.05 {
            Label::Negative
        } else {
            Label::Neutral
        }
    }

    /// Lower-case name: `positive`, `neutral` or `negative`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "positive",
            Label::Neutral => "neutral",
            Label::Negative => "negative",
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The analyser: lexicon, emoji descriptions and booster table. Build it once and share it
/// (it is immutable); [`analyzer`] returns a process-wide instance.
#[derive(Debug, Clone)]
pub struct SentimentAnalyzer {
    lexicon: HashMap<&'static str, f64>,
    boosters: HashMap<&'static str, f64>,
    emojis: HashMap<char, &'static str>,
    ascii_emoji: bool,
}

static ANALYZER: LazyLock<SentimentAnalyzer> = LazyLock::new(SentimentAnalyzer::new);

/// The process-wide analyser with the bundled lexicons (built on first use, about 10 ms).
pub fn analyzer() -> &'static SentimentAnalyzer {
    &ANALYZER
}

impl Default for SentimentAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

/// Python's `str.isspace` for one character (Unicode `White_Space` plus the ASCII
/// information separators `\x1c`..`\x1f`, which Python also splits on).
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn is_titlecase(c: char) -> bool {
    matches!(c,
        '\u{01C5}' | '\u{01C8}' | '\u{01CB}' | '\u{01F2}' | '\u{1F88}'..='\u{1F8F}'
        | '\u{1F98}'..='\u{1F9F}' | '\u{1FA8}'..='\u{1FAF}' | '\u{1FBC}' | '\u{1FCC}' | '\u{1FFC}')
}

/// Python's `str.isupper`: at least one upper-case character and no lower- or title-case one.
fn py_isupper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        if !cased && c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

/// Python's `str.lower`, borrowing when nothing changes.
fn py_lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        let lower = s.to_lowercase();
        if lower == s { Cow::Borrowed(s) } else { Cow::Owned(lower) }
    }
}

/// Python's `round(x, digits)`: correctly rounded, ties to even on the exact binary value.
fn py_round(x: f64, digits: usize) -> f64 {
    const SCALE: [f64; 5] = [1.0, 10.0, 100.0, 1_000.0, 10_000.0];
    // Fast path: with `p = x * 10^digits` (one rounding: for |p| < 1e9 the error is under
    // 1.2e-7) more than 1e-6 away from a tie, rounding `p` rounds the exact product the same
    // way (`p - floor(p)` is exact); and `r / 10^digits` of
    // two exactly representable numbers is correctly rounded, i.e. the double nearest to the
    // decimal `r * 10^-digits`, which is what CPython's round returns. Near a tie, or for
    // large values, the exact path below decides.
    if let Some(&scale) = SCALE.get(digits) {
        let p = x * scale;
        if p.abs() < 1e9 {
            let frac = p - p.floor();
            if (frac - 0.5).abs() > 1e-6 {
                return p.round() / scale;
            }
        }
    }
    py_round_exact(x, digits)
}

/// [`py_round`] by formatting: Rust's fixed-precision formatting is exact (round half to even
/// on the exact value), like CPython's dtoa-based round; parsing gives back the nearest
/// double, as CPython does. Formatted on the stack; the heap only for huge values.
fn py_round_exact(x: f64, digits: usize) -> f64 {
    let mut buf = StackText { buf: [0; 48], len: 0 };
    if std::fmt::Write::write_fmt(&mut buf, format_args!("{x:.digits$}")).is_ok() {
        return buf.as_str().parse().unwrap_or(x);
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// A small text buffer on the stack; writing more than it holds fails.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `token.strip(string.punctuation)`, keeping the token when 2 or fewer characters remain
/// (it was probably an emoticon such as `:)`).
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c| PUNCTUATION.contains(c));
    if stripped.chars().nth(2).is_none() { token } else { stripped }
}

/// [`NEGATE`] as a set (looked up up to three times per lexicon word).
static NEGATE_SET: LazyLock<rustc_hash::FxHashSet<&'static str>> =
    LazyLock::new(|| NEGATE.iter().copied().collect());

fn negated(word: &str) -> bool {
    NEGATE_SET.contains(word) || word.contains("n't")
}

fn normalize(score: f64) -> f64 {
    let norm = score / (score * score + ALPHA).sqrt();
    norm.clamp(-1.0, 1.0)
}

/// Tokens of a text with their lower-case forms and the text-level properties.
struct SentiText<'t> {
    words: Vec<&'t str>,
    lower: Vec<Cow<'t, str>>,
    is_cap_diff: bool,
}

impl<'t> SentiText<'t> {
    fn new(text: &'t str) -> Self {
        let words: Vec<&str> =
            text.split(py_isspace).filter(|w| !w.is_empty()).map(strip_punc_if_word).collect();
        let lower = words.iter().map(|w| py_lower(w)).collect();
        let allcaps = words.iter().filter(|w| py_isupper(w)).count();
        let diff = words.len() - allcaps;
        let is_cap_diff = 0 < diff && diff < words.len();
        SentiText { words, lower, is_cap_diff }
    }

    fn l(&self, i: usize) -> &str {
        &self.lower[i]
    }
}

impl SentimentAnalyzer {
    /// Builds an analyser from the bundled lexicons.
    pub fn new() -> Self {
        let mut lexicon = HashMap::with_capacity_and_hasher(7600, Default::default());
        for line in RAW_LEXICON.trim_end_matches('\n').split('\n') {
            let mut fields = line.trim().split('\t');
            let (Some(word), Some(measure)) = (fields.next(), fields.next()) else { continue };
            if let Ok(v) = measure.parse::<f64>() {
                lexicon.insert(word, v);
            }
        }
        let mut emojis = HashMap::with_capacity_and_hasher(3600, Default::default());
        for line in RAW_EMOJI_LEXICON.trim_end_matches('\n').split('\n') {
            let mut fields = line.trim().split('\t');
            let (Some(emoji), Some(description)) = (fields.next(), fields.next()) else {
                continue;
            };
            // The reference looks emojis up one code point at a time, so only single code
            // point entries can ever match.
            let mut chars = emoji.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emojis.insert(c, description);
            }
        }
        let boosters = BOOSTER_INCR
            .iter()
            .map(|&w| (w, B_INCR))
            .chain(BOOSTER_DECR.iter().map(|&w| (w, B_DECR)))
            .collect();
        let ascii_emoji = emojis.keys().any(char::is_ascii);
        SentimentAnalyzer { lexicon, boosters, emojis, ascii_emoji }
    }

    /// Number of entries in the word lexicon.
    pub fn lexicon_len(&self) -> usize {
        self.lexicon.len()
    }

    /// The lexicon valence of a (lower-case) word, if it has one.
    pub fn lexicon_valence(&self, word: &str) -> Option<f64> {
        self.lexicon.get(word).copied()
    }

    /// Scores a text exactly as `SentimentIntensityAnalyzer().polarity_scores(text)` does.
    pub fn polarity_scores(&self, text: &str) -> Scores {
        let text = self.replace_emojis(text);
        let text = text.trim_matches(py_isspace);
        let st = SentiText::new(text);
        let n = st.words.len();
        let mut sentiments = Vec::with_capacity(n);
        for i in 0..n {
            let lower = st.l(i);
            if self.boosters.contains_key(lower)
                || (i + 1 < n && lower == "kind" && st.l(i + 1) == "of")
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.sentiment_valence(&st, i));
        }
        but_check(&st, &mut sentiments);
        score_valence(&sentiments, text)
    }

    fn replace_emojis<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if text.is_ascii() && !self.ascii_emoji {
            return Cow::Borrowed(text);
        }
        if !text.chars().any(|c| self.emojis.contains_key(&c)) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut prev_space = true;
        for c in text.chars() {
            if let Some(description) = self.emojis.get(&c) {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            } else {
                out.push(c);
                prev_space = c == ' ';
            }
        }
        Cow::Owned(out)
    }

    fn in_lexicon(&self, word: &str) -> bool {
        self.lexicon.contains_key(word)
    }

    fn sentiment_valence(&self, st: &SentiText<'_>, i: usize) -> f64 {
        let n = st.words.len();
        let item = st.words[i];
        let lower = st.l(i);
        let Some(&lex) = self.lexicon.get(lower) else { return 0.0 };
        let mut valence = lex;
        // "no" as a negation of the next lexicon word rather than a word of its own.
        if lower == "no" && i != n - 1 && self.in_lexicon(st.l(i + 1)) {
            valence = 0.0;
        }
        if (i > 0 && st.l(i - 1) == "no")
            || (i > 1 && st.l(i - 2) == "no")
            || (i > 2 && st.l(i - 3) == "no" && matches!(st.l(i - 1), "or" | "nor"))
        {
            valence = lex * N_SCALAR;
        }
        if py_isupper(item) && st.is_cap_diff {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        for start_i in 0..3 {
            if i > start_i && !self.in_lexicon(st.l(i - (start_i + 1))) {
                let mut s = self.scalar_inc_dec(st, i - (start_i + 1), valence);
                if start_i == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start_i == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, st, start_i, i);
                if start_i == 2 {
                    valence = self.special_idioms_check(valence, st, i);
                }
            }
        }
        self.least_check(valence, st, i)
    }

    fn scalar_inc_dec(&self, st: &SentiText<'_>, j: usize, valence: f64) -> f64 {
        let Some(&b) = self.boosters.get(st.l(j)) else { return 0.0 };
        let mut scalar = b;
        if valence < 0.0 {
            scalar = -scalar;
        }
        if py_isupper(st.words[j]) && st.is_cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
        scalar
    }

    fn least_check(&self, valence: f64, st: &SentiText<'_>, i: usize) -> f64 {
        if i > 1 && !self.in_lexicon(st.l(i - 1)) && st.l(i - 1) == "least" {
            if st.l(i - 2) != "at" && st.l(i - 2) != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && !self.in_lexicon(st.l(i - 1)) && st.l(i - 1) == "least" {
            return valence * N_SCALAR;
        }
        valence
    }

    fn special_idioms_check(&self, mut valence: f64, st: &SentiText<'_>, i: usize) -> f64 {
        let n = st.words.len();
        let w = |k: usize| st.l(k);
        // onezero, twoonezero, twoone, threetwoone, threetwo: the first match wins.
        let sequences: [&[usize]; 5] = [
            &[i - 1, i],
            &[i - 2, i - 1, i],
            &[i - 2, i - 1],
            &[i - 3, i - 2, i - 1],
            &[i - 3, i - 2],
        ];
        for seq in sequences {
            if let Some(v) = special_case(seq.iter().map(|&k| w(k))) {
                valence = v;
                break;
            }
        }
        if n - 1 > i
            && let Some(v) = special_case([w(i), w(i + 1)].into_iter())
        {
            valence = v;
        }
        if n - 1 > i + 1
            && let Some(v) = special_case([w(i), w(i + 1), w(i + 2)].into_iter())
        {
            valence = v;
        }
        // Booster/dampener n-grams such as "sort of" or "kind of" before the word.
        for seq in [&[i - 3, i - 2, i - 1][..], &[i - 3, i - 2], &[i - 2, i - 1]] {
            if let Some(b) = booster_ngram(seq.iter().map(|&k| w(k))) {
                valence += b;
            }
        }
        valence
    }
}

/// The multi-word booster entries: the only ones an n-gram of two or more tokens can match.
const BOOSTER_NGRAMS: &[(&str, f64)] =
    &[("just enough", B_DECR), ("kind of", B_DECR), ("sort of", B_DECR)];

fn booster_ngram<'a>(words: impl Iterator<Item = &'a str> + Clone) -> Option<f64> {
    BOOSTER_NGRAMS.iter().find(|(phrase, _)| phrase_eq(phrase, words.clone())).map(|&(_, v)| v)
}

/// True when `phrase` equals the words joined by single spaces.
fn phrase_eq<'a>(phrase: &str, words: impl Iterator<Item = &'a str>) -> bool {
    let mut rest = phrase;
    for (k, word) in words.enumerate() {
        if k > 0 {
            match rest.strip_prefix(' ') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(word) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

fn special_case<'a>(words: impl Iterator<Item = &'a str> + Clone) -> Option<f64> {
    SPECIAL_CASES.iter().find(|(phrase, _)| phrase_eq(phrase, words.clone())).map(|&(_, v)| v)
}

fn negation_check(valence: f64, st: &SentiText<'_>, start_i: usize, i: usize) -> f64 {
    let w = |k: usize| st.l(k);
    let factor = match start_i {
        0 if negated(w(i - 1)) => N_SCALAR,
        1 if w(i - 2) == "never" && (w(i - 1) == "so" || w(i - 1) == "this") => 1.25,
        1 if w(i - 2) == "without" && w(i - 1) == "doubt" => 1.0,
        1 if negated(w(i - 2)) => N_SCALAR,
        // Kept as the reference writes it: `A and (B or C) or (D or E)`.
        2 if (w(i - 3) == "never" && (w(i - 2) == "so" || w(i - 2) == "this"))
            || (w(i - 1) == "so" || w(i - 1) == "this") =>
        {
            1.25
        }
        2 if w(i - 3) == "without" && (w(i - 2) == "doubt" || w(i - 1) == "doubt") => 1.0,
        2 if negated(w(i - 3)) => N_SCALAR,
        _ => return valence,
    };
    valence * factor
}

/// The contrastive "but": halves scores before the first "but" and boosts those after it by
/// half. Like the reference, each step rescales the *first* score equal to the current one.
fn but_check(st: &SentiText<'_>, sentiments: &mut [f64]) {
    let Some(bi) = st.lower.iter().position(|w| w == "but") else { return };
    for k in 0..sentiments.len() {
        let s = sentiments[k];
        let si = sentiments.iter().position(|&x| x == s).unwrap_or(k);
        if si < bi {
            sentiments[si] = s * 0.5;
        } else if si > bi {
            sentiments[si] = s * 1.5;
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.bytes().filter(|&b| b == b'!').count().min(4);
    let qm = text.bytes().filter(|&b| b == b'?').count();
    let qm_amp = if qm > 1 { if qm <= 3 { qm as f64 * 0.18 } else { 0.96 } } else { 0.0 };
    ep as f64 * 0.292 + qm_amp
}

fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores { neg: 0.0, neu: 0.0, pos: 0.0, compound: 0.0 };
    }
    let mut sum: f64 = sentiments.iter().sum();
    let amp = punctuation_emphasis(text);
    if sum > 0.0 {
        sum += amp;
    } else if sum < 0.0 {
        sum -= amp;
    }
    let compound = normalize(sum);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0u32);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amp;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amp;
    }
    let total = pos_sum + neg_sum.abs() + f64::from(neu_count);
    Scores {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((f64::from(neu_count) / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicons_load_completely() {
        let a = SentimentAnalyzer::new();
        // 7520 lines with 14 repeated words: the reference's dict holds 7506 entries too.
        assert_eq!(RAW_LEXICON.lines().filter(|l| !l.is_empty()).count(), 7520);
        assert_eq!(a.lexicon_len(), 7506);
        assert_eq!(a.lexicon_valence("love"), Some(3.2));
        // Of 3570 emoji entries, 1212 are one code point: the only ones the reference can match.
        assert_eq!(a.emojis.len(), 1212);
    }

    #[test]
    fn python_rounding() {
        // Ties on the exact binary value round to even, as CPython's round() does.
        assert_eq!(py_round(0.03125, 4), 0.0312);
        assert_eq!(py_round(0.09375, 4), 0.0938);
        assert_eq!(py_round(-0.5129, 4), -0.5129);
        assert_eq!(py_round(0.6666666, 3), 0.667);
        // Too long for the stack buffer: the heap path, same rounding.
        assert_eq!(py_round(1e300, 4), 1e300);
        assert_eq!(py_round(-2.5e-5, 4), -0.0);
        assert!(py_round(-2.5e-5, 4).is_sign_negative());
    }

    #[test]
    fn fast_rounding_equals_exact_rounding() {
        // Random values, values on and next to decimal ties, and the shapes VADER produces.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut values = Vec::new();
        for _ in 0..400_000 {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            values.push(u * 2.0 - 1.0);
            values.push(u * 3.0);
            values.push(f64::from_bits(next() >> 2) % 1e6);
        }
        for k in -20_000i32..=20_000 {
            for digits in [3, 4] {
                let tie = (f64::from(k) + 0.5) / 10f64.powi(digits);
                values.extend([tie, tie.next_up(), tie.next_down(), f64::from(k) / 1e4]);
            }
        }
        for n in 1..200u32 {
            for d in 1..=n {
                values.push(f64::from(d) / f64::from(n));
            }
        }
        for &x in &values {
            for digits in [0, 3, 4] {
                let (fast, exact) = (py_round(x, digits), py_round_exact(x, digits));
                assert!(
                    fast == exact && fast.is_sign_negative() == exact.is_sign_negative(),
                    "round({x:e}, {digits}): {fast} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn python_string_predicates() {
        assert!(py_isupper("SUX!"));
        assert!(!py_isupper("Sux"));
        assert!(!py_isupper(":)"));
        assert!(!py_isupper("\u{01C5}A"));
        assert!(py_isspace('\x1c'));
        assert_eq!(strip_punc_if_word(":)"), ":)");
        assert_eq!(strip_punc_if_word("good!!!"), "good");
        assert_eq!(strip_punc_if_word("(ok)"), "(ok)");
        assert_eq!(py_lower("ÀB"), "àb");
    }

    #[test]
    fn reference_examples() {
        // Values printed by vaderSentiment 3.3.2 for its own demo sentences.
        let a = analyzer();
        let cases = [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("Today SUX!", -0.5461),
            ("Not bad at all", 0.431),
        ];
        for (text, compound) in cases {
            assert_eq!(a.polarity_scores(text).compound, compound, "{text}");
        }
        assert_eq!(a.polarity_scores("").compound, 0.0);
        assert_eq!(a.polarity_scores("   ").label(), Label::Neutral);
    }

    #[test]
    fn booster_ngrams_are_the_multi_word_boosters() {
        let multi: Vec<&str> =
            BOOSTER_INCR.iter().chain(BOOSTER_DECR).copied().filter(|k| k.contains(' ')).collect();
        let listed: Vec<&str> = BOOSTER_NGRAMS.iter().map(|(k, _)| *k).collect();
        assert_eq!(multi.len(), listed.len());
        for (k, v) in BOOSTER_NGRAMS {
            assert!(multi.contains(k));
            assert_eq!(analyzer().boosters.get(k), Some(v));
        }
    }

    #[test]
    fn labels() {
        assert_eq!(Label::from_compound(0.05), Label::Positive);
        assert_eq!(Label::from_compound(0.0499), Label::Neutral);
        assert_eq!(Label::from_compound(-0.05), Label::Negative);
        assert_eq!(Label::Negative.to_string(), "negative");
    }
}
