//! Word lists for synthetic identities. All names are invented combinations; e-mail addresses use
//! the reserved `example.*` domains (RFC 2606) and IP addresses the shared address space
//! `100.64.0.0/10` (RFC 6598), so no generated record points at a real person or host.

pub const FEMALE_FIRST: &[&str] = &[
    "Dana", "Maria", "Aisha", "Chloe", "Priya", "Elena", "Grace", "Hannah", "Ines", "Julia",
    "Keiko", "Lena", "Mona", "Nadia", "Olivia", "Paula", "Rosa", "Sofia", "Tara", "Yara",
];
pub const MALE_FIRST: &[&str] = &[
    "Marcus", "Adam", "Bruno", "Carlos", "David", "Ethan", "Felix", "Gavin", "Hugo", "Ivan",
    "Jamal", "Kenji", "Liam", "Mateo", "Noah", "Omar", "Pavel", "Rafael", "Samuel", "Tomas",
];
pub const OTHER_FIRST: &[&str] =
    &["Alex", "Jordan", "Riley", "Sam", "Taylor", "Morgan", "Casey", "Robin", "Quinn", "Avery"];
pub const LAST: &[&str] = &[
    "Whitfield",
    "Oyelaran",
    "Andersen",
    "Baptiste",
    "Castillo",
    "Delacroix",
    "Eriksen",
    "Fitzgerald",
    "Gallagher",
    "Haddad",
    "Ishikawa",
    "Jovanovic",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintero",
    "Rasmussen",
    "Santoro",
    "Takahashi",
    "Ueda",
    "Valdez",
    "Weber",
    "Xavier",
    "Yilmaz",
    "Zielinski",
    "Brennan",
    "Choi",
];
pub const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];

/// (state, first two digits of its zip codes, weight by rough population).
pub const STATES: &[(&str, &str, u32)] = &[
    ("California", "94", 39),
    ("Texas", "75", 30),
    ("Florida", "33", 22),
    ("New York", "10", 20),
    ("Pennsylvania", "19", 13),
    ("Illinois", "60", 13),
    ("Ohio", "44", 12),
    ("Georgia", "30", 11),
    ("North Carolina", "27", 11),
    ("Michigan", "48", 10),
    ("New Jersey", "07", 9),
    ("Virginia", "22", 9),
    ("Washington", "98", 8),
    ("Arizona", "85", 7),
    ("Massachusetts", "02", 7),
    ("Tennessee", "37", 7),
    ("Indiana", "46", 7),
    ("Missouri", "63", 6),
    ("Maryland", "21", 6),
    ("Wisconsin", "53", 6),
    ("Colorado", "80", 6),
    ("Minnesota", "55", 6),
    ("Oregon", "97", 4),
    ("Kansas", "66", 3),
    ("Nevada", "89", 3),
    ("Utah", "84", 3),
    ("Iowa", "50", 3),
];

pub const CITY_PREFIX: &[&str] = &["North", "South", "East", "West", "Port", "New", "Lake", "Fort"];
pub const CITY_ROOT: &[&str] = &[
    "Ellen", "Brian", "Marsh", "Oak", "Cedar", "River", "Stone", "Maple", "Harbor", "Pine",
    "Aspen", "Clear", "Fair", "Green", "Hill", "Iron",
];
pub const CITY_SUFFIX: &[&str] =
    &["mouth", "ville", "field", "ton", "burgh", "port", "side", "haven", "land", " Springs"];

/// Operating-system user agents by device type (the original stored user agents here).
pub const OS_AGENTS: [&[&str]; 4] = [
    // mobile
    &[
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36",
    ],
    // desktop
    &[
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    ],
    // tablet
    &[
        "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    ],
    // unknown
    &[
        "Opera/9.80 (Android 2.3.3; Linux; Opera Mobi/ADR-1111101157) Presto/2.9.201 Version/11.50",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
        "curl/7.88.1",
    ],
];

/// Browser user agents (independent of the device, as in the original data).
pub const BROWSER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
    "Opera/9.80 (Android 2.3.3; Linux; Opera Mobi/ADR-1111101157) Presto/2.9.201 Version/11.50",
];

/// Review templates; `{}` is replaced by the product name.
pub const POSITIVE_REVIEWS: &[&str] = &[
    "This {} is incredibly sturdy and was easy to assemble.",
    "Absolutely love the {}! Great quality for the price.",
    "The {} looks beautiful in our home, highly recommend.",
    "Excellent {}, arrived quickly and feels very solid.",
    "Very comfortable and stylish {}. We are happy with it.",
];
pub const NEUTRAL_REVIEWS: &[&str] = &[
    "A standard {}, nothing special but works.",
    "It's a basic {}. Does what it needs to.",
    "The {} is okay. Assembly took about an hour.",
];
pub const NEGATIVE_REVIEWS: &[&str] = &[
    "The {} arrived damaged and support was slow to respond.",
    "Drawers of the {} stick and it was a pain to put together.",
    "Poor quality {}, it wobbles and the finish scratches easily.",
    "Not worth the money. The {} looks cheap and uncomfortable.",
];
