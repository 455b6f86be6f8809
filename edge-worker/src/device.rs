//! Device detection from the `User-Agent` header.
//!
//! A small hand-written classifier (no regex engine: the Worker bundle size
//! matters) that turns a User-Agent string into a [`Device`]: a coarse
//! [`DeviceType`], the operating system and the browser, with their versions.
//! It is meant for targeting rules such as `device.type == "mobile"` or
//! `device.os == "iOS"`, not for analytics-grade identification: unknown or
//! exotic agents simply get fewer fields.
//!
//! Conventions:
//!
//! * iPhone, iPod and iPad all report `os: "iOS"` (the type tells them apart).
//!   **iPadOS 13+ in its default "desktop website" mode sends a Macintosh
//!   User-Agent that is byte-for-byte a desktop Safari one, so such iPads are
//!   classified as `desktop` / `macOS`.** Telling them apart needs client-side
//!   signals (touch points) that a server cannot see.
//! * Android without the `Mobile` token is a tablet (Google's convention for
//!   Chrome and Firefox).
//! * Windows NT versions are mapped to marketing names (`10.0` → `"10"`,
//!   `6.1` → `"7"`, ...). Windows 11 also sends `NT 10.0`, so it reports `"10"`.
//! * Versions are reported as they appear in the agent, with `_` turned into
//!   `.` for Apple systems (`10_15_7` → `"10.15.7"`).
//! * Bots (search crawlers, HTTP libraries, headless browsers) get
//!   `type: "bot"`; when the bot names itself its name goes into `browser`.
//! * Only the first [`MAX_UA_LEN`] bytes of the agent are examined.
//!
//! ```
//! use bunting_edge_worker::device::{Device, DeviceType};
//! let d = Device::from_user_agent(
//!     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
//!      (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
//! );
//! assert_eq!(d.kind, DeviceType::Mobile);
//! assert_eq!(
//!     d.to_json(),
//!     serde_json::json!({"type": "mobile", "os": "iOS", "osVersion": "17.4",
//!                        "browser": "Safari", "browserVersion": "17.4"})
//! );
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest prefix of a User-Agent, in bytes, that is examined.
pub const MAX_UA_LEN: usize = 1024;

/// Coarse device class, serialized in lowercase (`"mobile"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// Phones (and iPods).
    Mobile,
    /// Tablets: iPad (when it says so), Android without `Mobile`.
    Tablet,
    /// Desktop and laptop computers, ChromeOS, desktop-mode iPads.
    Desktop,
    /// Crawlers, HTTP libraries, headless browsers.
    Bot,
    /// Anything else, including an empty or missing User-Agent.
    Unknown,
}

impl DeviceType {
    /// The serialized spelling, e.g. `"mobile"`.
    ///
    /// ```
    /// use bunting_edge_worker::device::DeviceType;
    /// assert_eq!(DeviceType::Tablet.as_str(), "tablet");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Desktop => "desktop",
            DeviceType::Bot => "bot",
            DeviceType::Unknown => "unknown",
        }
    }
}

/// What a User-Agent says about the device, OS and browser.
///
/// Serializes like [`Device::to_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The device class (serialized as `"type"`).
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// Operating system: `iOS`, `Android`, `Windows`, `macOS`, `Linux`,
    /// `ChromeOS`, `Windows Phone`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Operating system version, e.g. `17.4`, `10.15.7`, `10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Browser, in-app webview or bot name: `Chrome`, `Safari`, `Firefox`,
    /// `Edge`, `Opera`, `Samsung Internet`, `Android WebView`, `Facebook`,
    /// `Googlebot`, `curl`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// Browser version as sent, e.g. `124.0.6367.82`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
}

impl Device {
    /// A device about which nothing is known.
    pub fn unknown() -> Device {
        Device {
            kind: DeviceType::Unknown,
            os: None,
            os_version: None,
            browser: None,
            browser_version: None,
        }
    }

    /// Classifies a User-Agent string. Never fails: unknown agents give
    /// [`DeviceType::Unknown`] and no other fields.
    ///
    /// ```
    /// use bunting_edge_worker::device::{Device, DeviceType};
    /// let d = Device::from_user_agent("Mozilla/5.0 (Linux; Android 14; SM-X710) \
    ///     AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36");
    /// assert_eq!(d.kind, DeviceType::Tablet); // Android without "Mobile"
    /// assert_eq!(d.os.as_deref(), Some("Android"));
    /// assert_eq!(d.browser.as_deref(), Some("Chrome"));
    ///
    /// assert_eq!(Device::from_user_agent("curl/8.5.0").kind, DeviceType::Bot);
    /// assert_eq!(Device::from_user_agent("").kind, DeviceType::Unknown);
    /// ```
    pub fn from_user_agent(ua: &str) -> Device {
        let ua = truncate(ua.trim(), MAX_UA_LEN);
        if ua.is_empty() {
            return Device::unknown();
        }
        let mut d = Device::unknown();
        let (kind, os, os_version) = detect_os(ua);
        d.kind = kind;
        d.os = os.map(str::to_string);
        d.os_version = os_version;
        if let Some((name, version)) = detect_bot(ua) {
            d.kind = DeviceType::Bot;
            d.browser = name.map(str::to_string);
            d.browser_version = version.map(str::to_string);
        } else if let Some((name, version)) = detect_browser(ua, d.os.as_deref()) {
            d.browser = Some(name.to_string());
            d.browser_version = version.map(str::to_string);
        }
        d
    }

    /// The device as a JSON object for an evaluation context:
    /// `{"type", "os", "osVersion", "browser", "browserVersion"}`, absent
    /// fields omitted.
    ///
    /// ```
    /// use bunting_edge_worker::device::Device;
    /// assert_eq!(Device::from_user_agent("Googlebot/2.1 (+http://www.google.com/bot.html)").to_json(),
    ///            serde_json::json!({"type": "bot", "browser": "Googlebot", "browserVersion": "2.1"}));
    /// ```
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(self.kind.as_str()));
        let fields = [
            ("os", &self.os),
            ("osVersion", &self.os_version),
            ("browser", &self.browser),
            ("browserVersion", &self.browser_version),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                m.insert(k.into(), Value::from(v.as_str()));
            }
        }
        Value::Object(m)
    }
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Byte offset just after the first occurrence of `token` in `ua` that starts
/// at a token boundary (start of string, or after a non-alphanumeric byte).
fn find_token(ua: &str, token: &str) -> Option<usize> {
    let bytes = ua.as_bytes();
    ua.match_indices(token)
        .find(|&(i, _)| i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
        .map(|(i, _)| i + token.len())
}

/// The version-like run starting at `at`: up to a space, `;`, `)`, `(` or `,`.
fn version_at(ua: &str, at: usize) -> Option<&str> {
    let rest = &ua[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ';' | ')' | '(' | ','))
        .unwrap_or(rest.len());
    let v = rest[..end].trim_end_matches(['.', '_']);
    (!v.is_empty() && v.as_bytes()[0].is_ascii_digit()).then_some(v)
}

/// The version after a single space at `at` (`"Android 14"`), if any.
fn version_after_space(ua: &str, at: usize) -> Option<&str> {
    if ua[at..].starts_with(' ') {
        version_at(ua, at + 1)
    } else {
        None
    }
}

/// The version after `token` (e.g. `Chrome/`), if the token is present.
fn token_version<'a>(ua: &'a str, token: &str) -> Option<Option<&'a str>> {
    find_token(ua, token).map(|at| version_at(ua, at))
}

fn dotted(v: Option<&str>) -> Option<String> {
    v.map(|v| v.replace('_', "."))
}

fn detect_os(ua: &str) -> (DeviceType, Option<&'static str>, Option<String>) {
    use DeviceType::*;
    if let Some(at) = find_token(ua, "Windows Phone") {
        let v = version_after_space(ua, at).map(str::to_string);
        return (Mobile, Some("Windows Phone"), v);
    }
    let ipad = find_token(ua, "iPad").is_some();
    if ipad || find_token(ua, "iPhone").is_some() || find_token(ua, "iPod").is_some() {
        // "CPU iPhone OS 17_4 like Mac OS X", "CPU OS 17_4 like Mac OS X".
        let v = ua
            .find(" OS ")
            .and_then(|i| version_at(ua, i + 4))
            .map(|v| v.replace('_', "."));
        return (if ipad { Tablet } else { Mobile }, Some("iOS"), v);
    }
    if let Some(at) = find_token(ua, "Android") {
        let v = version_after_space(ua, at).map(str::to_string);
        let kind = if find_token(ua, "Mobile").is_some() {
            Mobile
        } else {
            Tablet
        };
        return (kind, Some("Android"), v);
    }
    if let Some(at) = find_token(ua, "CrOS") {
        // "CrOS x86_64 14541.0.0": the platform version follows the arch.
        let v = ua[at..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| version_at(s, 0))
            .map(str::to_string);
        return (Desktop, Some("ChromeOS"), v);
    }
    if let Some(at) = find_token(ua, "Windows NT") {
        let v = version_after_space(ua, at).map(|nt| {
            match nt {
                "10.0" => "10",
                "6.3" => "8.1",
                "6.2" => "8",
                "6.1" => "7",
                "6.0" => "Vista",
                "5.1" | "5.2" => "XP",
                other => other,
            }
            .to_string()
        });
        return (Desktop, Some("Windows"), v);
    }
    if find_token(ua, "Windows").is_some() {
        return (Desktop, Some("Windows"), None);
    }
    if let Some(at) = find_token(ua, "Mac OS X") {
        // "Intel Mac OS X 10_15_7" (Safari, Chrome) or "10.15" (Firefox).
        let v = dotted(version_after_space(ua, at));
        return (Desktop, Some("macOS"), v);
    }
    if find_token(ua, "Macintosh").is_some() {
        return (Desktop, Some("macOS"), None);
    }
    if find_token(ua, "Linux").is_some() || find_token(ua, "X11").is_some() {
        let os = if find_token(ua, "FreeBSD").is_some() {
            "FreeBSD"
        } else {
            "Linux"
        };
        return (Desktop, Some(os), None);
    }
    if find_token(ua, "Mobi").is_some() {
        return (Mobile, None, None);
    }
    (Unknown, None, None)
}

/// Bots that name themselves: (token in the agent, reported name).
const NAMED_BOTS: &[(&str, &str)] = &[
    ("Googlebot", "Googlebot"),
    ("Google-InspectionTool", "Google-InspectionTool"),
    ("AdsBot-Google", "AdsBot-Google"),
    ("bingbot", "bingbot"),
    ("Applebot", "Applebot"),
    ("DuckDuckBot", "DuckDuckBot"),
    ("YandexBot", "YandexBot"),
    ("Baiduspider", "Baiduspider"),
    ("Slurp", "Yahoo! Slurp"),
    ("facebookexternalhit", "facebookexternalhit"),
    ("Twitterbot", "Twitterbot"),
    ("LinkedInBot", "LinkedInBot"),
    ("Slackbot", "Slackbot"),
    ("Discordbot", "Discordbot"),
    ("GPTBot", "GPTBot"),
    ("ClaudeBot", "ClaudeBot"),
    ("AhrefsBot", "AhrefsBot"),
    ("SemrushBot", "SemrushBot"),
    ("HeadlessChrome", "HeadlessChrome"),
    ("PhantomJS", "PhantomJS"),
    ("Lighthouse", "Lighthouse"),
    ("curl", "curl"),
    ("Wget", "Wget"),
    ("python-requests", "python-requests"),
    ("Python-urllib", "Python-urllib"),
    ("python-httpx", "python-httpx"),
    ("aiohttp", "aiohttp"),
    ("Go-http-client", "Go-http-client"),
    ("axios", "axios"),
    ("node-fetch", "node-fetch"),
    ("undici", "undici"),
    ("Java", "Java"),
    ("Apache-HttpClient", "Apache-HttpClient"),
    ("libwww-perl", "libwww-perl"),
    ("HTTPie", "HTTPie"),
    ("PostmanRuntime", "PostmanRuntime"),
];

/// Lowercase substrings that mark an agent as automated.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "spider",
    "crawl",
    "slurp",
    "headless",
    "phantomjs",
    "lighthouse",
    "facebookexternalhit",
    "bingpreview",
    "pingdom",
];

/// `Some((name, version))` when `ua` is a bot; `name` is `None` for a bot
/// recognised only by a generic marker.
fn detect_bot(ua: &str) -> Option<(Option<&'static str>, Option<&str>)> {
    for &(token, name) in NAMED_BOTS {
        if let Some(at) = find_token(ua, token) {
            // The token must end at a boundary too: "Javascript" is not "Java".
            if ua.as_bytes().get(at).is_some_and(u8::is_ascii_alphanumeric) {
                continue;
            }
            let version = ua[at..]
                .strip_prefix('/')
                .and_then(|_| version_at(ua, at + 1));
            return Some((Some(name), version));
        }
    }
    let lower = ua.to_ascii_lowercase();
    let marked = BOT_MARKERS.iter().any(|m| {
        lower.match_indices(m).any(|(i, _)| {
            // "CUBOT" is an Android phone brand, not a bot.
            !(*m == "bot" && lower[..i].ends_with("cu"))
        })
    });
    marked.then_some((None, None))
}

fn detect_browser<'a>(ua: &'a str, os: Option<&str>) -> Option<(&'static str, Option<&'a str>)> {
    // In-app browsers first: they embed a regular engine token too.
    if let Some(v) = token_version(ua, "FBAV/") {
        return Some(("Facebook", v));
    }
    if find_token(ua, "FBAN/").is_some() || find_token(ua, "FB_IAB/").is_some() {
        return Some(("Facebook", None));
    }
    if let Some(at) = find_token(ua, "Instagram") {
        return Some(("Instagram", version_after_space(ua, at)));
    }
    for (token, name) in [
        ("MicroMessenger/", "WeChat"),
        ("Line/", "LINE"),
        ("Snapchat/", "Snapchat"),
        ("musical_ly_", "TikTok"),
        ("BytedanceWebview/", "TikTok"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("Edg/", "Edge"),
        ("Edge/", "Edge"),
        ("OPR/", "Opera"),
        ("OPT/", "Opera"),
        ("OPiOS/", "Opera"),
        ("YaBrowser/", "Yandex Browser"),
        ("Vivaldi/", "Vivaldi"),
        ("UCBrowser/", "UC Browser"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Firefox/", "Firefox"),
    ] {
        if let Some(v) = token_version(ua, token) {
            return Some((name, v));
        }
    }
    if let Some(v) = token_version(ua, "Chrome/") {
        // Android WebView: "; wv)" with "Version/4.0 Chrome/...".
        if os == Some("Android") && ua.contains("; wv)") {
            return Some(("Android WebView", v));
        }
        return Some(("Chrome", v));
    }
    if let Some(v) = token_version(ua, "Chromium/") {
        return Some(("Chromium", v));
    }
    if find_token(ua, "Safari/").is_some() {
        if let Some(v) = token_version(ua, "Version/") {
            return Some(("Safari", v));
        }
        // Android's pre-Chrome stock browser also says Safari; keep it vague.
        return Some(("Safari", None));
    }
    if os == Some("iOS") && find_token(ua, "AppleWebKit/").is_some() {
        // WKWebView in an app: no "Safari/" token.
        return Some(("iOS WebView", None));
    }
    if let Some(v) = token_version(ua, "Opera/") {
        return Some(("Opera", v));
    }
    if let Some(v) = token_version(ua, "MSIE ") {
        return Some(("Internet Explorer", v));
    }
    if find_token(ua, "Trident/").is_some() {
        return Some(("Internet Explorer", token_version(ua, "rv:").flatten()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (agent, type, os, os version, browser, browser version)
    type Case = (
        &'static str,
        DeviceType,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    use DeviceType::*;

    const CASES: &[Case] = &[
        // iPhone Safari
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            Mobile,
            Some("iOS"),
            Some("17.4"),
            Some("Safari"),
            Some("17.4"),
        ),
        // iPhone Chrome
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/125.0.6422.80 Mobile/15E148 Safari/604.1",
            Mobile,
            Some("iOS"),
            Some("17.5"),
            Some("Chrome"),
            Some("125.0.6422.80"),
        ),
        // iPhone Firefox
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/126.0 Mobile/15E148 Safari/605.1.15",
            Mobile,
            Some("iOS"),
            Some("16.6.1"),
            Some("Firefox"),
            Some("126.0"),
        ),
        // iPhone Edge
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/124.0.2478.89 Mobile/15E148 Safari/605.1.15",
            Mobile,
            Some("iOS"),
            Some("17.4"),
            Some("Edge"),
            Some("124.0.2478.89"),
        ),
        // iPad (pre-iPadOS-13 style / "mobile website" mode)
        (
            "Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
            Tablet,
            Some("iOS"),
            Some("12.5.7"),
            Some("Safari"),
            Some("12.1.2"),
        ),
        // iPod touch
        (
            "Mozilla/5.0 (iPod touch; CPU iPhone OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
            Mobile,
            Some("iOS"),
            Some("12.5.7"),
            Some("Safari"),
            Some("12.1.2"),
        ),
        // iPadOS desktop mode: indistinguishable from a Mac.
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            Desktop,
            Some("macOS"),
            Some("10.15.7"),
            Some("Safari"),
            Some("17.4"),
        ),
        // iOS in-app WKWebView
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            Mobile,
            Some("iOS"),
            Some("17.4"),
            Some("iOS WebView"),
            None,
        ),
        // Instagram in-app on iPhone
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 329.0.3.29.110 (iPhone15,3; iOS 17_4; en_US; en; scale=3.00; 1290x2796; 604870476)",
            Mobile,
            Some("iOS"),
            Some("17.4"),
            Some("Instagram"),
            Some("329.0.3.29.110"),
        ),
        // Facebook in-app on iPhone
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/453.0.0.47.106;FBBV/571093584;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.3.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
            Mobile,
            Some("iOS"),
            Some("17.3.1"),
            Some("Facebook"),
            Some("453.0.0.47.106"),
        ),
        // Android phone Chrome
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
            Mobile,
            Some("Android"),
            Some("14"),
            Some("Chrome"),
            Some("124.0.6367.82"),
        ),
        // Android phone with reduced UA
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
            Mobile,
            Some("Android"),
            Some("10"),
            Some("Chrome"),
            Some("125.0.0.0"),
        ),
        // Android tablet Chrome (no "Mobile")
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Safari/537.36",
            Tablet,
            Some("Android"),
            Some("13"),
            Some("Chrome"),
            Some("123.0.6312.118"),
        ),
        // Samsung Internet on a phone
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            Mobile,
            Some("Android"),
            Some("14"),
            Some("Samsung Internet"),
            Some("25.0"),
        ),
        // Firefox for Android phone
        (
            "Mozilla/5.0 (Android 14; Mobile; rv:126.0) Gecko/126.0 Firefox/126.0",
            Mobile,
            Some("Android"),
            Some("14"),
            Some("Firefox"),
            Some("126.0"),
        ),
        // Firefox for Android tablet
        (
            "Mozilla/5.0 (Android 13; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
            Tablet,
            Some("Android"),
            Some("13"),
            Some("Firefox"),
            Some("125.0"),
        ),
        // Opera on Android
        (
            "Mozilla/5.0 (Linux; Android 10; VOG-L29) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36 OPR/81.1.4292.78446",
            Mobile,
            Some("Android"),
            Some("10"),
            Some("Opera"),
            Some("81.1.4292.78446"),
        ),
        // Edge on Android
        (
            "Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.64 Mobile Safari/537.36 EdgA/124.0.2478.50",
            Mobile,
            Some("Android"),
            Some("10"),
            Some("Edge"),
            Some("124.0.2478.50"),
        ),
        // Android WebView
        (
            "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36",
            Mobile,
            Some("Android"),
            Some("13"),
            Some("Android WebView"),
            Some("124.0.6367.82"),
        ),
        // Facebook in-app on Android
        (
            "Mozilla/5.0 (Linux; Android 12; SM-A525F Build/SP1A.210812.016; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.54 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/462.0.0.53.108;]",
            Mobile,
            Some("Android"),
            Some("12"),
            Some("Facebook"),
            Some("462.0.0.53.108"),
        ),
        // CUBOT is a phone brand, not a bot.
        (
            "Mozilla/5.0 (Linux; Android 11; CUBOT KINGKONG 5 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            Mobile,
            Some("Android"),
            Some("11"),
            Some("Chrome"),
            Some("120.0.0.0"),
        ),
        // Windows Chrome
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            Desktop,
            Some("Windows"),
            Some("10"),
            Some("Chrome"),
            Some("124.0.0.0"),
        ),
        // Windows Edge
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
            Desktop,
            Some("Windows"),
            Some("10"),
            Some("Edge"),
            Some("124.0.2478.80"),
        ),
        // Windows Firefox
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
            Desktop,
            Some("Windows"),
            Some("10"),
            Some("Firefox"),
            Some("126.0"),
        ),
        // Windows 7 Opera
        (
            "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36 OPR/95.0.0.0",
            Desktop,
            Some("Windows"),
            Some("7"),
            Some("Opera"),
            Some("95.0.0.0"),
        ),
        // Internet Explorer 11 on Windows 8.1
        (
            "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko",
            Desktop,
            Some("Windows"),
            Some("8.1"),
            Some("Internet Explorer"),
            Some("11.0"),
        ),
        // macOS Chrome
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            Desktop,
            Some("macOS"),
            Some("10.15.7"),
            Some("Chrome"),
            Some("124.0.0.0"),
        ),
        // macOS Firefox (dotted version)
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:126.0) Gecko/20100101 Firefox/126.0",
            Desktop,
            Some("macOS"),
            Some("10.15"),
            Some("Firefox"),
            Some("126.0"),
        ),
        // Linux Firefox
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            Desktop,
            Some("Linux"),
            None,
            Some("Firefox"),
            Some("125.0"),
        ),
        // Linux Chrome
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            Desktop,
            Some("Linux"),
            None,
            Some("Chrome"),
            Some("124.0.0.0"),
        ),
        // ChromeOS
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            Desktop,
            Some("ChromeOS"),
            Some("14541.0.0"),
            Some("Chrome"),
            Some("124.0.0.0"),
        ),
        // Windows Phone
        (
            "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063",
            Mobile,
            Some("Windows Phone"),
            Some("10.0"),
            Some("Edge"),
            Some("15.15063"),
        ),
        // Googlebot (desktop)
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Bot,
            None,
            None,
            Some("Googlebot"),
            Some("2.1"),
        ),
        // Googlebot smartphone
        (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Bot,
            Some("Android"),
            Some("6.0.1"),
            Some("Googlebot"),
            Some("2.1"),
        ),
        // bingbot
        (
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            Bot,
            None,
            None,
            Some("bingbot"),
            Some("2.0"),
        ),
        // curl
        ("curl/8.5.0", Bot, None, None, Some("curl"), Some("8.5.0")),
        // python-requests
        (
            "python-requests/2.31.0",
            Bot,
            None,
            None,
            Some("python-requests"),
            Some("2.31.0"),
        ),
        // HeadlessChrome
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36",
            Bot,
            Some("Linux"),
            None,
            Some("HeadlessChrome"),
            Some("124.0.6367.60"),
        ),
        // A generic crawler that does not name itself in a known way.
        (
            "Mozilla/5.0 (compatible; ExampleSpider/1.0; +https://example.com/spider)",
            Bot,
            None,
            None,
            None,
            None,
        ),
        // Generic "crawler"
        ("SomeCompany-Crawler/3.2", Bot, None, None, None, None),
        // Nonsense
        ("hello", Unknown, None, None, None, None),
    ];

    #[test]
    fn real_user_agents() {
        assert!(CASES.len() >= 25);
        for &(ua, kind, os, osv, browser, bv) in CASES {
            let d = Device::from_user_agent(ua);
            let want = Device {
                kind,
                os: os.map(String::from),
                os_version: osv.map(String::from),
                browser: browser.map(String::from),
                browser_version: bv.map(String::from),
            };
            assert_eq!(d, want, "{ua}");
        }
    }

    #[test]
    fn to_json_omits_absent_fields() {
        let d = Device::from_user_agent(
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        );
        assert_eq!(
            d.to_json(),
            json!({"type": "desktop", "os": "Linux", "browser": "Firefox", "browserVersion": "125.0"})
        );
        assert_eq!(Device::unknown().to_json(), json!({"type": "unknown"}));
    }

    #[test]
    fn serde_matches_to_json() {
        for &(ua, ..) in CASES {
            let d = Device::from_user_agent(ua);
            assert_eq!(serde_json::to_value(&d).unwrap(), d.to_json(), "{ua}");
            let back: Device = serde_json::from_value(d.to_json()).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn empty_and_odd_agents_do_not_panic() {
        assert_eq!(Device::from_user_agent(""), Device::unknown());
        assert_eq!(Device::from_user_agent("   "), Device::unknown());
        for ua in [
            "Android",
            "Android ",
            "iPhone OS ",
            "Windows NT",
            "Windows NT ",
            "Mac OS X",
            "Chrome/",
            "Chrome/ Safari/",
            "CrOS",
            "Instagram",
            "MSIE",
            "Trident/7.0; rv:",
            "😀 Android 😀 Mobile",
            "Mozilla/5.0 (Linux; Android \u{00e9}; x) Chrome/1",
        ] {
            let _ = Device::from_user_agent(ua);
        }
        assert_eq!(
            Device::from_user_agent("Chrome/").browser.as_deref(),
            Some("Chrome")
        );
        assert_eq!(Device::from_user_agent("Chrome/").browser_version, None);
    }

    #[test]
    fn very_long_agents_are_truncated_on_a_char_boundary() {
        let ua = format!("Mozilla/5.0 (Windows NT 10.0) {}", "é".repeat(5000));
        let d = Device::from_user_agent(&ua);
        assert_eq!(d.os.as_deref(), Some("Windows"));
        // Tokens past the limit are not seen.
        let late = format!("{} curl/8.0", "x".repeat(MAX_UA_LEN));
        assert_ne!(Device::from_user_agent(&late).kind, DeviceType::Bot);
    }

    #[test]
    fn tokens_must_start_at_a_boundary() {
        // "XChrome/1" is not Chrome; "Fooandroid" is not Android.
        assert_eq!(Device::from_user_agent("XChrome/1").browser, None);
        assert_eq!(Device::from_user_agent("Fooandroid 12").os, None);
        // A word like "Javascript" does not make an agent a Java client.
        assert_ne!(
            Device::from_user_agent("Mozilla/5.0 (Windows NT 10.0) Javascript-enabled").kind,
            DeviceType::Bot
        );
    }
}
