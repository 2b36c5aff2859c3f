//! Agreement with the reference Python implementation (vaderSentiment 3.3.2), run live.
//!
//! The corpus: the original system's 30 review texts, every review the generator writes
//! (from its templates and from generated sessions), VADER's own demo sentences, and 30,000
//! seeded random sentences built to exercise every rule (boosters, negations, "no", "least",
//! "but", ALL CAPS, punctuation, idioms, emoticons, emojis, odd Unicode and whitespace).
//! Each text is scored by `tests/vader_reference.py` with the venv's Python; labels must agree
//! exactly and every score within 1e-4.

use std::path::PathBuf;
use std::process::Command;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shopstream_sentiment::{Label, analyzer};

/// The review texts of the original Python generator.
const ORIGINAL_REVIEWS: &[&str] = &[
    "Absolutely love this sofa! It's so comfortable and stylish.",
    "The coffee table is perfect, just what I was looking for!",
    "Such a charming accent chair, and it fits my decor perfectly.",
    "This bed is incredibly sturdy and was easy to assemble.",
    "Bedside table fits perfectly next to the bed and has ample storage.",
    "The dresser offers great space and is very functional.",
    "Solid office desk with plenty of room and a sleek design.",
    "Office chair is very comfortable for long working hours. Highly recommend!",
    "Elegant and robust, this dining table is a great addition to my home.",
    "These chairs are not only stylish but also very comfortable.",
    "The sofa is less comfortable than I expected.",
    "The coffee table came with a few scratches and was hard to assemble.",
    "Accent chair looks good but not as sturdy as I hoped.",
    "The bed frame is wobbly and feels cheap.",
    "This bed side table is smaller than it looks in the pictures. Not satisfied.",
    "Drawers of the dresser stick and it was a pain to put together.",
    "The desk surface scratches easily and lacks cable management.",
    "Office chair is uncomfortable and started squeaking within a week.",
    "The dining table surface is prone to stains and scratches.",
    "The build quality of dining chairs is questionable and uncomfortable.",
    "The sofa is okay, does the job.",
    "A standard coffee table, nothing special but works.",
    "Decent chair, but I wouldn't rave about it.",
    "The bed is fine, though I expected a bit more in terms of quality.",
    "It's a basic bedside table. Does what it needs to.",
    "Average dresser, the build is fine.",
    "It's an office desk, nothing more or less.",
    "It's alright, serves its purpose for now.",
    "The dining table is functional, though not very impressive.",
    "Chairs are mediocre, good for occasional use.",
];

/// VADER's own demo and "tricky" sentences.
const DEMO: &[&str] = &[
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!",
    "Without a doubt, excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.",
    "Without a doubt, an excellent idea.",
    "It was one of the worst movies I've seen, despite good reviews.",
    "Unbelievably bad acting!! Poor direction. VERY poor production.",
    "VERY BAD movie!",
    "",
    "   ",
    "no",
    "no good",
    "no no no",
    "good no",
    "",
];

const SPECIAL: &[&str] = &[
    "no",
    "No",
    "NO",
    "not",
    "never",
    "without",
    "doubt",
    "least",
    "at",
    "very",
    "so",
    "this",
    "or",
    "nor",
    "but",
    "BUT",
    "But",
    "kind",
    "of",
    "sort",
    "just",
    "enough",
    "the",
    "shit",
    "bomb",
    "bad",
    "ass",
    "badass",
    "bus",
    "stop",
    "yeah",
    "right",
    "kiss",
    "death",
    "to",
    "die",
    "for",
    "beating",
    "heart",
    "isn't",
    "don't",
    "wouldn't",
    "uh-uh",
    "kinda",
    "sorta",
    "kind-of",
    "really",
    "REALLY",
    "extremely",
    "barely",
    "slightly",
    "quite",
    "utterly",
    "hardly",
];
const FILLER: &[&str] = &[
    "sofa", "table", "it", "was", "the", "a", "and", "I", "we", "chair", "desk", "is", "it's", "x",
    "OK", "USA", "IKEA", "Q4", "2024", "3rd", "-", "--", "...", "&", "(", ")",
];
const EMOTICONS: &[&str] =
    &[":)", ":-(", ":D", "<3", ":(", ";)", "xD", ":-)", ":/", "</3", ":')", "8-)", "^_^"];
const EXOTIC: &[&str] = &[
    "ÉCOLE",
    "naïve",
    "straße",
    "Ωmega",
    "ΣΟΦΑ",
    "İstanbul",
    "ǅemal",
    "Ǆ",
    "日本",
    "Café!",
    "ﬁne",
    "ÀÉÎ",
    "ß",
    "ǈ",
    "ᾈ",
    "Ⓐ",
    "ⓐ",
    "\u{00a0}",
    "\u{2003}",
];
const PUNCT: &[&str] =
    &["", "", "", "", "!", "!!", "!!!!!", "?", "??", "????", ",", ".", "...", "?!", ":"];
const SPACES: &[&str] =
    &[" ", " ", " ", " ", " ", " ", "  ", "\t", "\n", "\u{a0}", "\u{1c}", "\u{3000}", "\u{2009}"];

fn random_corpus(count: usize) -> Vec<String> {
    let lexicon: Vec<&str> = include_str!("../src/data/vader_lexicon.txt")
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|w| !w.is_empty())
        .collect();
    let emojis: Vec<String> = include_str!("../src/data/emoji_utf8_lexicon.txt")
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|e| e.chars().count() == 1)
        .map(str::to_string)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(3_3_2);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = rng.random_range(1..=18);
        let mut s = String::new();
        if rng.random_bool(0.05) {
            s.push_str(SPACES.choose(&mut rng).copied().unwrap_or(" "));
        }
        for k in 0..len {
            if k > 0 {
                s.push_str(SPACES.choose(&mut rng).copied().unwrap_or(" "));
            }
            let roll: f64 = rng.random();
            let mut word: String = if roll < 0.35 {
                lexicon.choose(&mut rng).copied().unwrap_or("good").to_string()
            } else if roll < 0.65 {
                SPECIAL.choose(&mut rng).copied().unwrap_or("no").to_string()
            } else if roll < 0.85 {
                FILLER.choose(&mut rng).copied().unwrap_or("it").to_string()
            } else if roll < 0.9 {
                EMOTICONS.choose(&mut rng).copied().unwrap_or(":)").to_string()
            } else if roll < 0.95 {
                emojis.choose(&mut rng).cloned().unwrap_or_default()
            } else {
                EXOTIC.choose(&mut rng).copied().unwrap_or("ß").to_string()
            };
            let caps: f64 = rng.random();
            if caps < 0.12 {
                word = word.to_uppercase();
            } else if caps < 0.18 {
                let mut c = word.chars();
                word = match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => word,
                };
            }
            if rng.random_bool(0.03) {
                // An emoji glued to a word, which the reference joins oddly.
                word.push_str(emojis.choose(&mut rng).map(String::as_str).unwrap_or(""));
            }
            if rng.random_bool(0.05) {
                word.insert(0, '"');
            }
            s.push_str(&word);
            if rng.random_bool(0.25) {
                s.push_str(PUNCT.choose(&mut rng).copied().unwrap_or(""));
            }
        }
        if rng.random_bool(0.05) {
            s.push_str(SPACES.choose(&mut rng).copied().unwrap_or(" "));
        }
        out.push(s);
    }
    out
}

fn generator_reviews() -> Vec<String> {
    let mut texts = Vec::new();
    for (_, template) in shopstream_generator::review_templates() {
        for p in shopstream_schema::PRODUCTS {
            texts.push(template.replace("{}", p.name));
        }
    }
    let mut generator =
        shopstream_generator::Generator::new(shopstream_generator::GeneratorConfig {
            seed: 7,
            users: 200,
            ..Default::default()
        })
        .expect("generator config");
    for _ in 0..2000 {
        let g = generator.next_session();
        texts.extend(g.session.product_reviews.into_iter().flatten());
    }
    texts
}

/// Scores the texts with the reference implementation: `[neg, neu, pos, compound]` each.
fn reference_scores(texts: &[String]) -> Vec<[f64; 4]> {
    let dir = std::env::temp_dir();
    let tag = format!("{}-{}", std::process::id(), texts.len());
    let input = dir.join(format!("vader-in-{tag}.json"));
    let output = dir.join(format!("vader-out-{tag}.json"));
    std::fs::write(&input, serde_json::to_vec(texts).expect("json")).expect("write input");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vader_reference.py");
    let status = Command::new(shopstream_test_support::python())
        .arg(&script)
        .arg(&input)
        .arg(&output)
        .status()
        .expect("run the reference Python");
    assert!(status.success(), "reference script failed: {status}");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&output).expect("read output")).expect("json");
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    assert_eq!(result["version"], "3.3.2", "the reference must be vaderSentiment 3.3.2");
    serde_json::from_value(result["scores"].clone()).expect("scores")
}

fn assert_agrees(name: &str, texts: &[String]) {
    let expected = reference_scores(texts);
    assert_eq!(expected.len(), texts.len());
    let a = analyzer();
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        let got = a.polarity_scores(text);
        let got_v = [got.neg, got.neu, got.pos, got.compound];
        let label_ok = got.label() == Label::from_compound(want[3]);
        let close = got_v.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-4);
        if !label_ok || !close {
            failures.push(format!("{text:?}: rust {got_v:?} python {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} texts disagree with vaderSentiment, first: {:#?}",
        failures.len(),
        texts.len(),
        &failures[..failures.len().min(15)]
    );
}

#[test]
fn original_and_generator_reviews_agree_with_reference() {
    let mut texts: Vec<String> = ORIGINAL_REVIEWS.iter().map(|s| s.to_string()).collect();
    texts.extend(generator_reviews());
    texts.extend(DEMO.iter().map(|s| s.to_string()));
    assert_agrees("reviews", &texts);
    // The original's positive texts are all positive and its negative ones negative, so the
    // comparison above is not between two constant answers.
    let labels: Vec<Label> =
        ORIGINAL_REVIEWS.iter().map(|t| analyzer().polarity_scores(t).label()).collect();
    for label in Label::ALL {
        assert!(labels.contains(&label), "no {label} review in the original texts");
    }
}

#[test]
fn random_sentences_agree_with_reference() {
    let texts = random_corpus(30_000);
    let distinct: std::collections::HashSet<Label> =
        texts.iter().map(|t| analyzer().polarity_scores(t).label()).collect();
    assert_eq!(distinct.len(), 3);
    assert_agrees("random corpus", &texts);
}
