"""The finance lexicon: data only. :mod:`alphaloop.ml.sentiment.vader` interprets it.

Why a finance layer on top of VADER: VADER was built for social media. It has no valence for
"beats", "downgrade", "plunges", "layoffs", "recall" or "buyback"; it reads "profit warning" as
mixed ("profit" +1.9, "warning" -1.4), "interest rates" and "credit" as praise, "top executive"
as good news and "unemployment falls" as bad. Everything here is written for finance headlines in
general (earnings, guidance, analysts, credit, corporate actions, regulation, operations, market
moves, macro), not for any particular test sentence.

The tables (weights on VADER's valence scale, about -4 .. +4 per word or phrase):

* ``WORD_VALENCES`` are merged into VADER's own lexicon (VADER then applies its negation, booster
  and capitals rules to them); ``NEUTRAL_WORDS`` are removed from it.
* ``REWRITES`` turn multi-word negators ("no longer", "fails to", "averts") into "not" before
  anything is scored, so VADER and the phrase rules negate through them.
* ``PHRASE_RULES`` are regexes with a weight; a match's span is taken away from the text VADER
  sees (so "profit" in "profit warning" is not counted twice), its weight is scaled by
  ``INTENSIFIERS`` near it, by a percentage right after it, and flipped by a negator before it.
* ``NEGATORS`` and ``CLAUSE_BREAKS`` say what negates a rule and where a negation stops;
  ``CONTRAST_WORDS`` ("but") and ``SUBORDINATORS`` ("as", "after") weight a headline's clauses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PhraseRule:
    """``pattern`` is matched case-insensitively. When matches overlap the higher ``priority``
    wins, then the longer match, then the rule listed first. A weight of 0 marks a phrase as
    neutral in finance and hides its words from VADER ("interest rates", "in line with estimates")."""

    name: str
    family: str
    pattern: str
    weight: float
    priority: int = 0


def _set(words: str) -> frozenset[str]:
    """``"a b c"`` -> ``frozenset({"a", "b", "c"})``: word lists stay readable."""
    return frozenset(words.split())


def _forms(table: dict[str, float]) -> dict[str, float]:
    """``{"surge surges surged": 2.0}`` -> one entry per space-separated form."""
    return {form: valence for forms, valence in table.items() for form in forms.split()}


# ----------------------------------------------------------------------------- single words

WORD_VALENCES: dict[str, float] = _forms({
    # price and market moves, for a named subject ("Tesla plunges", "Bitcoin soars")
    "surge surges surged surging": 2.0,
    "soar soars soared soaring skyrocket skyrockets skyrocketed": 2.3,
    "jump jumps jumped jumping leap leaps leapt leaped rocket rockets rocketed": 1.8,
    "rally rallies rallied rallying": 1.8,
    "climb climbs climbed climbing rise rises rose risen rising gains gained": 1.2,
    "rebound rebounds rebounded rebounding recover recovers recovered recovery": 1.5,
    "advance advances advanced pop pops popped": 1.0,
    "higher": 0.8,
    "plunge plunges plunged plunging plummet plummets plummeted nosedive nosedives nosedived": -2.6,
    "tumble tumbles tumbled tumbling slump slumps slumped slumping crater craters cratered": -2.3,
    "sink sinks sank sunk sinking": -2.0,
    "slide slides slid sliding": -1.7,
    "fall falls fell falling drop drops dropped dropping": -1.4,
    "decline declines declined declining dip dips dipped slip slips slipped sag sags sagged": -1.2,
    "retreat retreats retreated": -0.8,
    "crash crashes crashed": -2.8,
    "selloff sell-off selloffs rout meltdown": -2.4,
    "tops": 1.2,
    # earnings and outlook adjectives VADER lacks or underrates
    "upbeat bullish": 1.8,
    "blowout": 2.0,
    "resilient": 1.5,
    "rosy": 1.5,
    "outperform outperforms outperformed outperformance": 1.5,
    "overweight": 1.0,
    "underperform underperforms underperformed": -1.5,
    "underweight": -1.0,
    "accretive": 1.2,
    "windfall": 1.8,
    "tailwind tailwinds": 1.2,
    "headwind headwinds": -1.3,
    "undervalued": 1.0,
    "overvalued": -1.0,
    "oversubscribed": 1.8,
    "inflows": 1.2,
    "outflows exodus": -1.4,
    "bearish downbeat bleak dismal": -1.9,
    "gloomy grim": -1.8,
    "lackluster lacklustre sluggish tepid anaemic anemic": -1.5,
    "soft softer softening": -0.8,
    "muted": -0.8,
    "shortfall shortfalls": -2.0,
    "glut oversupply": -1.5,
    "debt": -0.6,  # VADER's -1.5 reads every bond sale or refinancing as bad news
    "unprofitable loss-making": -1.8,
    "warns warned": -1.8,
    "slowdown downturn stagnation contraction": -1.6,
    "stagflation": -2.0,
    "turmoil contagion": -2.0,
    "volatile": -0.6,
    "slashes slashed slash slashing": -1.5,
    "lifts lift lifted": 1.0,
    "weakens weakened weakening": -1.2,
    "strengthens strengthened strengthening": 1.2,
    # credit and distress
    "bankruptcy bankruptcies insolvency insolvent": -3.0,
    "default defaults defaulted defaulting": -2.5,
    "delisted delisting": -2.0,
    "dilutive dilution": -1.5,
    "bailout": -1.5,
    # corporate events
    "halt halts": -1.8,
    "strike": -1.5,  # in finance news a strike is labour action ("strikes a deal" is a phrase rule)
    "ratify ratifies ratified approve": 1.5,
    "boom booms booming": 1.5,
    "litigation": -1.2,
    "concern concerns jitters": -1.2,
    "outage outages glitch": -1.8,
    "breach hack hacked cyberattack ransomware": -2.0,
    "writedown write-down writedowns impairment": -2.0,
    # legal and regulatory
    "probe probes investigation investigations subpoena subpoenaed": -1.8,
    "indicted indictment": -2.5,
    "fined": -2.0,
    "lawsuit lawsuits": -1.5,
    "sanctions": -1.5,
    "tariff tariffs": -0.8,
    "antitrust": -0.8,
})

# VADER words that carry no sentiment in finance text: "interest rates", "credit card", "share
# price", "health care", "top executive", "gross margin", "like-for-like", company names
# ("United", "Trust", "Super Micro", "Block"), a demand figure, a fine-print "fine", and the
# conditions a drug treats.
NEUTRAL_WORDS: frozenset[str] = _set(
    "interest interests credit credits share shares security securities trust united like "
    "party super care top fine gross demand kind pretty please spirit block yes no "
    # finance nouns: "asset manager", "Justice Department", "market value", "wealth unit"
    "asset assets justice value wealth worth natural "
    # what a drug treats is its topic, not news about it ("cancer drug", "heart drug approved")
    "cancer pain heart disease tumor tumour obesity diabetes infection"
)
# "no" is taken out of VADER's word list only as a word with its own valence (-1.2 for a bare
# "no"); it still negates through REWRITES and the phrase rules' NEGATORS.

# ----------------------------------------------------------------------------- negation

# Multi-word negators become "not" first: VADER then negates the word after them, and so do
# phrase rules. "avoids bankruptcy", "emerges from Chapter 11", "staves off a downgrade" and
# "no longer expects growth" all read as the negation of what follows.
REWRITES: tuple[tuple[str, str], ...] = (
    (r"\bno\s+longer\b", "not"),
    (r"\b(?:fail|fails|failed|failing|unable)\s+to\b", "not"),
    (r"\b(?:avoid|avoids|avoided|avoiding|avert|averts|averted|averting|sidesteps?|sidestepped|"
     r"dodges?|dodged|escapes?|escaped|evades?|evaded)\b", "not"),
    (r"\b(?:stave[sd]?|staving|ward(?:s|ed)?|fend(?:s|ed)?|shrug(?:s|ged)?)\s+off\b", "not"),
    (r"\b(?:emerges?|emerged|emerging|exits?|exited)\s+from\b", "not"),
    (r"\b(?:rules?|ruled|ruling)\s+out\b", "not"),
    (r"\bnot\s+(?:expected|likely|set|going)\s+to\b", "not"),
)

# A phrase rule is negated by one of these among the three words before it, within its clause.
NEGATORS: frozenset[str] = _set(
    "not no never without neither nor none cannot cant nothing hardly barely "
    "didn't didnt doesn't doesnt don't dont isn't isnt wasn't wasnt aren't arent weren't werent "
    "won't wont wouldn't wouldnt hasn't hasnt haven't havent hadn't hadnt can't couldn't couldnt "
    "shouldn't shouldnt"
)
NEGATION_SCALAR = -0.74  # VADER's N_SCALAR: a negated phrase keeps most, not all, of its weight
NEGATION_WINDOW = 3

# A negation does not reach across these; a "but"/"however" shifts weight to what follows it
# (VADER's own rule: 0.5 before, 1.5 after).
CLAUSE_BREAKS: frozenset[str] = _set(
    "but however yet while whereas although though despite as after amid and because since when"
)
CONTRAST_WORDS: frozenset[str] = frozenset({"but", "however"})
# A headline's main clause says what happened; a clause opened by one of these says why or
# against what ("shares rise as sales decline less than feared"), so it counts for less.
SUBORDINATORS: frozenset[str] = _set("as after amid despite while though although because following")
SUBORDINATE_WEIGHT = 0.6
BEFORE_CONTRAST, AFTER_CONTRAST = 0.5, 1.5

# ----------------------------------------------------------------------------- intensity

# Multipliers for a phrase when one of these sits within two words of it ("sharply cuts
# guidance", "slightly misses estimates"). Combined by product and clipped to INTENSITY_RANGE.
INTENSIFIERS: dict[str, float] = _forms({
    "sharply steeply dramatically drastically massively hugely": 1.35,
    "massive huge biggest deepest steepest largest": 1.3,
    "significantly substantially strongly heavily severely deeply": 1.25,
    "big deep steep heavy major sharp severe": 1.2,
    "unexpectedly surprise surprisingly shock": 1.15,
    "far well handily easily comfortably more faster quicker sharper further": 1.15,
    "slightly marginally barely slight marginal less slower": 0.6,
    "modestly narrowly partially mildly somewhat modest minor small smaller": 0.75,
})
INTENSITY_RANGE = (0.4, 1.8)
INTENSITY_WINDOW = 2
# A percentage right after a phrase ("revenue jumps 40%") scales it by 1 + min(pct, cap) / 100.
PERCENT_CAP = 50.0
CAPS_BOOST = 1.2  # a word of 4+ letters of the phrase in capitals, the text not ("BEATS estimates")

# ----------------------------------------------------------------------------- phrase rules

# Building blocks. _GAP is a word that does not end a clause; _MODS the words that may sit
# between a verb and its object ("raises its full-year EPS guidance", "beats Wall Street
# estimates", "cuts Nvidia price target"; a capitalised name is allowed there).
_GAP = (r"(?!(?:but|and|as|while|after|despite|though|although|yet|amid|because|since|when|if)\b)"
        r"(?:[\w$%'.-]|,(?=\d))*[\w$%]")  # "11,000" is one word; "sales," ends a clause
_MOD = (
    r"(?:its|the|a|an|their|it's|this|next|current|own|full[- ]year|annual|fiscal|yearly|quarterly|"
    r"first[- ]half|second[- ]half|(?:first|second|third|fourth)[- ]quarter|[hq][1-4]|fy\s?\d{2,4}|"
    r"\d{4}|profit|sales|revenue|earnings|eps|margin|ebitda|delivery|deliveries|production|"
    r"shipment|subscriber|growth|core|adjusted|organic|comparable|same[- ]store|capex|spending|"
    r"free|cash[- ]flow|operating|net|gross|per[- ]share|top[- ]line|bottom[- ]line|analysts'?|"
    r"analyst|wall\s+street|street|consensus|market|company|average|(?-i:[A-Z][\w&'.-]*))"
)
_MODS = rf"(?:\s+{_MOD}){{0,4}}?"
_EXPECT = (
    r"(?:estimates?|expectations?|forecasts?|consensus|views?|projections?|targets?|predictions?|"
    r"guidance|outlook|hopes|whisper\s+numbers?)"
)
_GUIDE = r"(?:guidance|guide|outlook|forecasts?|targets?|projections?|view|estimates?|goals?)"
_PRICE_TARGET = r"(?:price[- ]targets?|target[- ]prices?|pt|price\s+objectives?|targets?)"
_RAISE = (
    r"(?:raise[sd]?|raising|lift(?:s|ed|ing)?|boost(?:s|ed|ing)?|hike[sd]?|hiking|increase[sd]?|"
    r"increasing|up(?:s|ped)?|bump(?:s|ed)?\s+up|improve[sd]?|ratchet(?:s|ed)?\s+up|upgrade[sd]?|"
    r"upgrading|reiterates?\s+and\s+raises?)"
)
_CUT = (
    r"(?:cut|cuts|cutting|lower(?:s|ed|ing)?|slash(?:es|ed|ing)?|trim(?:s|med|ming)?|reduce[sd]?|"
    r"reducing|withdraw(?:s|n|ing)?|withdrew|pull(?:s|ed)?|suspend(?:s|ed|ing)?|scrap(?:s|ped)?|"
    r"downgrade[sd]?|downgrading|ratchet(?:s|ed)?\s+down|walk(?:s|ed)?\s+back|pare[sd]?|temper(?:s|ed)?)"
)
_CONFIRM = r"(?:reaffirm(?:s|ed)?|reiterate[sd]?|maintain(?:s|ed)?|confirm(?:s|ed)?|back(?:s|ed)?|keep(?:s)?|kept|holds?|held)"

# Metrics: "up" is good news for the first list and bad news for the second ("costs rise").
_METRIC = (
    r"(?:profits?|earnings|revenues?|sales|income|eps|ebitda|margins?|growth|demand|orders|bookings|"
    r"deliveries|shipments|production|output|exports|volumes?|traffic|subscribers?|users|customers|"
    r"market\s+share|cash\s+flows?|guidance|outlook|confidence|sentiment|optimism|shares|stocks?|"
    r"equities|stock\s+price|share\s+price|valuations?|index|gdp|payrolls|hiring|activity|pmi|"
    r"spending|investment|aum|assets\s+under\s+management|premiums|dividends?|bitcoin|ether|crypto|"
    r"gold|oil|yuan|yen|euro|dollar|pound|sterling|rupee|franc|lira|peso|won|currency|price|prices|"
    r"futures|nasdaq|s&p\s+500|dow|nikkei|ftse|dax|bonds?)"
)
_INVERSE = (
    r"(?:costs?|expenses|losses|loss|debt|debts|deficit|inflation|cpi|unemployment|jobless\s+claims|mortgage\s+rates|"
    r"jobless\s+rate|layoffs|job\s+cuts|delinquenc(?:y|ies)|defaults|charge[- ]offs|write[- ]?downs|"
    r"impairments|cash\s+burn|churn|volatility|vix|borrowing\s+costs|short\s+interest|outflows|"
    r"redemptions|bad\s+loans|non[- ]performing\s+loans|arrears|complaints|claims)"
)
_NUM = (r"(?:\d+|multi|several|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
        r"thirty|forty|fifty)")
_HIGH = rf"(?:record|all[- ]time|{_NUM}[- ](?:year|month|week|day|session))[- ]highs?"
_LOW = rf"(?:record|all[- ]time|{_NUM}[- ](?:year|month|week|day|session))[- ]lows?"
_UP = (
    r"(?:rise[sn]?|rose|rising|jump(?:s|ed|ing)?|surge[sd]?|surging|soar(?:s|ed|ing)?|climb(?:s|ed|ing)?|"
    r"gain(?:s|ed)?|grow(?:s|n|ing)?|grew|increase[sd]?|increasing|advance[sd]?|rebound(?:s|ed)?|"
    r"recover(?:s|ed)?|improve[sd]?|improving|accelerate[sd]?|accelerating|spike[sd]?|double[sd]?|"
    r"triple[sd]?|expand(?:s|ed)?|widen(?:s|ed)?|rall(?:y|ies|ied)|leap(?:s|t|ed)?|balloon(?:s|ed)?|"
    r"swell(?:s|ed)?|top(?:s|ped)?|beat(?:s)?|boom(?:s|ed|ing)?|pop(?:s|ped)?|strengthen(?:s|ed|ing)?|firm(?:s|ed)?|(?:hit(?:s|ting)?|reach(?:es|ed)?|touch(?:es|ed)?|at|near|to)\s+(?:an?\s+)?"
    + _HIGH + r")"
)
_DOWN = (
    r"(?:fall(?:s|en|ing)?|fell|drop(?:s|ped|ping)?|decline[sd]?|declining|slide[sd]?|slid|sliding|"
    r"slump(?:s|ed|ing)?|plunge[sd]?|plunging|plummet(?:s|ed)?|tumble[sd]?|tumbling|sink(?:s|ing)?|"
    r"sank|sunk|shrink(?:s|ing)?|shrank|contract(?:s|ed|ing)?|slow(?:s|ed|ing)?|ease[sd]?|easing|"
    r"cool(?:s|ed|ing)?|dip(?:s|ped)?|slip(?:s|ped)?|weaken(?:s|ed|ing)?|narrow(?:s|ed)?|halve[sd]?|"
    r"deteriorate[sd]?|deteriorating|crash(?:es|ed)?|collapse[sd]?|stall(?:s|ed)?|dr(?:y|ies|ied)\s+up|"
    r"evaporate[sd]?|retreat(?:s|ed)?|sag(?:s|ged)?|miss(?:es|ed)?|"
    r"(?:hit(?:s|ting)?|reach(?:es|ed)?|touch(?:es|ed)?|at|near|to)\s+(?:an?\s+)?" + _LOW + r")"
)
_UP_NOUN = (
    r"(?:rise|jump|surge|increase|gain|growth|rebound|boost|uptick|improvement|pickup|pick-up|"
    r"acceleration|recovery|spike|leap|rally)"
)
_DOWN_NOUN = (
    r"(?:drop|fall|decline|slump|plunge|slide|dip|contraction|slowdown|decrease|downturn|"
    r"deterioration|weakness|tumble|collapse|shrinkage)"
)
_UP_ADJ = (
    r"(?:rising|soaring|surging|higher|climbing|growing|increasing|mounting|ballooning|spiralling|spiraling|"
    r"record|wider|widening|bigger|deeper|deepening|larger|heavier|steeper|"
    r"(?:higher|wider|bigger|deeper|larger)[- ]than[- ](?:expected|forecast))"
)
_DOWN_ADJ = (
    r"(?:falling|declining|lower|easing|cooling|shrinking|reduced|narrower|narrowing|smaller|lighter|slowing|"
    r"softer|(?:lower|narrower|smaller)[- ]than[- ](?:expected|forecast))"
)
# "shares open higher", "stock is down 40%": higher/lower/up/down only right after one of these
_TRADE_VERB = (
    r"(?:open(?:s|ed)?|close[sd]?|end(?:s|ed)?|finish(?:es|ed)?|trade[sd]?|trading|move[sd]?|edge[sd]?|"
    r"inch(?:es|ed)?|tick(?:s|ed)?|head(?:s|ed)?|are|is|were|was|seen|set|settle[sd]?)"
)
_METRIC_GAP = rf"(?:\s+{_GAP}){{0,3}}?"
# "claims fall to their lowest level since 2022": the level belongs to the move
_LEVEL_TAIL = (
    r"(?:\s+(?:to|at|near)\s+(?:an?\s+|its\s+|their\s+|the\s+)?(?:lowest|highest|weakest|strongest|"
    r"(?:\d+|multi|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|thirty|forty|fifty)[- ]"
    r"(?:year|month|week)[- ](?:lows?|highs?)|record\s+(?:lows?|highs?))(?:\s+(?:level|point|close|reading))?)?"
)
_SUBJECT = (
    r"(?:sec|doj|ftc|fca|cftc|finra|justice\s+department|department\s+of\s+justice|eu|european\s+"
    r"commission|regulators?|prosecutors?|authorities|antitrust|fbi|irs|attorneys?\s+general|"
    r"watchdogs?|cma|competition\s+authority)"
)
_LEGAL = (
    r"(?:probes?|probing|investigat\w+|inquiry|inquiries|subpoena\w*|raids?|raided|charges?|charged|"
    r"sues?|sued|lawsuits?|fines?|fined|penalt\w+|scrutiny|crackdown)"
)

PHRASE_RULES: tuple[PhraseRule, ...] = (
    # --- earnings: beats, misses, records, swings, warnings
    PhraseRule("beats_expectations", "earnings",
               rf"\b(?:beat|beats|beating|top|tops|topped|topping|exceed(?:s|ed|ing)?|surpass(?:es|ed|ing)?|"
               rf"outpace[sd]?|outstrip(?:s|ped)?|crush(?:es|ed)?|smash(?:es|ed)?|trounce[sd]?|"
               rf"blow(?:s|n)?\s+past|blew\s+past|(?:comes?|came|coming)\s+in\s+(?:above|ahead\s+of)|"
               rf"above|ahead\s+of){_MODS}\s+{_EXPECT}\b", 2.8),
    PhraseRule("beats_on", "earnings",
               r"\b(?:beat|beats|top|tops|topped)\s+by\b|\b(?:beat|beats|top|tops|topped)\s+on\s+(?:both\s+)?(?:the\s+)?_W_{0,2}?(?:top\s+and\s+bottom\s+lines?|"
               r"earnings|revenue|sales|profit|eps|estimates|both\s+lines)\b", 2.5),
    PhraseRule("earnings_beat", "earnings",
               r"\b(?:earnings|profit|revenue|sales|eps|quarterly|results)\s+beats?\b|\bbeat[- ]and[- ]raise\b|"
               r"\bblowout\s+(?:quarter|results|earnings|report)\b", 2.6),
    PhraseRule("better_than_expected", "earnings",
               r"\b(?:better|stronger|higher|bigger|greater|firmer|solid)[- ]than[- ]"
               r"(?:expected|forecast|anticipated|estimated|feared|predicted)\b", 2.4),
    PhraseRule("worse_than_expected", "earnings",
               r"\b(?:worse|weaker|lower|smaller|slower|softer|poorer)[- ]than[- ]"
               r"(?:expected|forecast|anticipated|estimated|predicted)\b", -2.4),
    # "higher-than-expected costs" is bad news, "lower-than-expected inflation" good news
    PhraseRule("higher_than_expected_costs", "earnings",
               rf"\b(?:higher|bigger|larger|greater|faster|hotter|stronger)[- ]than[- ](?:expected|forecast|"
               rf"anticipated|estimated|predicted)\s+_W_?{_INVERSE}\b", -2.4),
    PhraseRule("lower_than_expected_costs", "earnings",
               rf"\b(?:lower|smaller|slower|cooler|softer|narrower)[- ]than[- ](?:expected|forecast|"
               rf"anticipated|estimated|predicted)\s+_W_?{_INVERSE}\b", 2.4),
    PhraseRule("misses_expectations", "earnings",
               rf"\b(?:miss|misses|missed|missing|lag|lags|lagged|trail|trails|trailed|undershoot(?:s)?|"
               rf"undershot|(?:falls?|fell|falling|comes?\s+up|came\s+up|coming\s+up)\s+short\s+of|"
               rf"(?:comes?|came|coming)\s+in\s+(?:below|under|shy\s+of)|below|under|shy\s+of|short\s+of)"
               rf"{_MODS}\s+{_EXPECT}\b", -2.8),
    PhraseRule("misses_on", "earnings",
               r"\b(?:miss|misses|missed)\s+by\b|\b(?:miss|misses|missed)\s+on\s+(?:both\s+)?(?:the\s+)?_W_{0,2}?(?:top\s+and\s+bottom\s+lines?|"
               r"earnings|revenue|sales|profit|eps|estimates|both\s+lines)\b|"
               r"\b(?:earnings|profit|revenue|sales|eps)\s+miss(?:es)?\b", -2.5),
    PhraseRule("falls_short", "earnings",
               r"\b(?:falls?|fell|falling|comes?\s+up|came\s+up)\s+short\b|\bdisappointing\s+"
               r"(?:results|earnings|quarter|sales|revenue|guidance|forecast|outlook)\b", -2.4),
    PhraseRule("in_line", "earnings",
               rf"\b(?:(?:roughly|broadly)\s+)?(?:in[- ]line\s+with|meets?|met|match(?:es|ed)?|matching)"
               rf"{_MODS}\s+{_EXPECT}\b|\bin[- ]line\s+(?:results|quarter|earnings)\b|\bmixed\s+"
               rf"(?:results|quarter|earnings|report|picture|signals)\b", 0.3),
    PhraseRule("record_results", "earnings",
               r"\b(?:record|all[- ]time|best[- ]ever)(?:[- ]_GAP_){0,2}?[- ](?:highs?|revenues?|sales|profits?|earnings|quarters?|"
               r"quarterly|results|deliveries|orders|bookings|inflows?|margins?|production|output|demand|year|"
               r"levels?|volumes?|traffic|subscribers?|users|income|dividend|buyback)\b", 2.4),
    PhraseRule("record_losses", "earnings",
               r"\b(?:record|all[- ]time|worst[- ]ever)(?:[- ]_GAP_){0,2}?[- ](?:loss|losses|lows?|outflows?|deficit|debt|layoffs|"
               r"declines?|drops?|falls?|slump|plunge|write[- ]?downs?|fines?|penalt(?:y|ies)|recall)\b", -2.6),
    PhraseRule("multi_period_high", "market", rf"\b{_HIGH}\b", 1.6),
    PhraseRule("multi_period_low", "market", rf"\b{_LOW}\b", -1.6),
    PhraseRule("swings_to_profit", "earnings",
               r"\b(?:swings?|swung|returns?|returned|turns?|turned|moves?|moved|flips?|flipped)\s+(?:back\s+)?"
               r"(?:to|in(?:to)?)\s+(?:an?\s+)?_W_?(?:profit|profitability|the\s+black|black|growth)\b|"
               r"\bback\s+in\s+the\s+black\b|\bfirst[- ]ever\s+profit\b", 2.5),
    PhraseRule("swings_to_loss", "earnings",
               r"\b(?:swings?|swung|slips?|slipped|plunges?|plunged|falls?|fell|sinks?|sank|turns?|turned|"
               r"tips?|tipped|slides?|slid|moves?|moved|flips?|flipped)\s+(?:in)?to\s+(?:an?\s+)?_W_?"
               r"(?:loss|losses|the\s+red|red|deficit|contraction|recession)\b|\bin\s+the\s+red\b", -2.5),
    PhraseRule("profit_warning", "earnings",
               r"\b(?:profit|earnings|sales|revenue|margin|results)\s+warnings?\b|\bwarn(?:s|ed|ing)?\s+"
               r"(?:that\s+|of\s+|on\s+|about\s+)?_W_{0,3}?(?:profits?|earnings|sales|revenues?|results|"
               r"outlook|demand|margins?|loss|losses|slowdown|cash|liquidity|weak\w*|lower|softer|"
               r"job\s+cuts|layoffs|impairment)\b", -3.0),
    PhraseRule("write_down", "earnings",
               r"\bwrite[- ]?downs?\b|\bwr(?:ites?|ote|itten|iting)[- ](?:down|off)\b|\bimpairments?\b|"
               r"\bgoodwill\s+(?:charge|impairment)\b|\b(?:takes?|took|taking|books?|booked|records?|recorded|"
               r"posts?|posted)\s+(?:an?\s+)?_W_{0,3}?(?:charges?|provisions?)\b|\b(?:one[- ]off|one[- ]time|non[- ]cash)\s+charges?\b", -2.0),

    # --- guidance and outlook
    PhraseRule("raises_price_target", "analyst", rf"\b{_RAISE}{_MODS}\s+{_PRICE_TARGET}\b", 2.0),
    PhraseRule("cuts_price_target", "analyst", rf"\b{_CUT}{_MODS}\s+{_PRICE_TARGET}\b", -2.0),
    PhraseRule("price_target_raised", "analyst",
               rf"\b{_PRICE_TARGET}\s+(?:is\s+|was\s+)?(?:raised|lifted|hiked|increased|boosted|upped|bumped\s+up)\b", 2.0),
    PhraseRule("price_target_cut", "analyst",
               rf"\b{_PRICE_TARGET}\s+(?:is\s+|was\s+)?(?:cut|lowered|slashed|reduced|trimmed)\b", -2.0),
    PhraseRule("raises_guidance", "guidance", rf"\b{_RAISE}{_MODS}\s+{_GUIDE}\b", 2.8),
    PhraseRule("cuts_guidance", "guidance", rf"\b{_CUT}{_MODS}\s+{_GUIDE}\b", -2.8),
    PhraseRule("guidance_raised", "guidance",
               r"\b(?:guidance|outlook|forecasts?|targets?)\s+(?:(?:is|was)\s+)?(?:raise[sd]?|hike[sd]?|increase[sd]?|"
               r"upgrade[sd]?|boost(?:s|ed)?|lifted)\b|"
               r"\b(?:raised|upbeat|strong|stronger|rosy|bullish|improved|upgraded|solid|robust|"
               r"optimistic|confident)\s+_W_?(?:guidance|guide|outlook|forecasts?|view)\b", 2.5),
    PhraseRule("guidance_cut", "guidance",
               r"\b(?:guidance|outlook|forecasts?|targets?)\s+(?:(?:is|was)\s+)?(?:cuts?|downgrade[sd]?|reductions?|"
               r"lowered|slashed|withdrawn|suspended|trimmed)\b|"
               r"\b(?:lowered|reduced|weak|weaker|soft|softer|gloomy|bleak|downbeat|cautious|disappointing|"
               r"dismal|grim|lackluster|lacklustre|tepid|muted|sombre|somber)\s+_W_?"
               r"(?:guidance|guide|outlook|forecasts?|view)\b", -2.5),
    PhraseRule("confirms_guidance", "guidance", rf"\b{_CONFIRM}{_MODS}\s+(?:{_GUIDE}|ratings?|dividend)\b", 0.3),

    # --- analysts: ratings
    PhraseRule("rating_to_buy", "analyst",
               r"\b(?:upgrad\w*|rais\w*|lift\w*|initiat\w*|start\w*|resum\w*|reiterat\w*|maintain\w*|rate[sd]?|"
               r"rating|assign\w*|moves?|moved|bump\w*|names?|named|adds?|added)\b_SW_{0,4}?\s+"
               r"(?:to|at|with|as)\s+(?:an?\s+)?(?:strong\s+|conviction\s+)?(?:buy|outperform|"
               r"overweight|accumulate|top\s+pick|positive)\b", 2.2),
    PhraseRule("rating_to_sell", "analyst",
               r"\b(?:downgrad\w*|cut|cuts|cutting|lower\w*|initiat\w*|start\w*|reiterat\w*|maintain\w*|"
               r"rate[sd]?|rating|assign\w*|moves?|moved)\b_SW_{0,4}?\s+(?:to|at|with|as)"
               r"\s+(?:an?\s+)?(?:strong\s+)?(?:sell|underperform|underweight|reduce|negative)\b", -2.2),
    PhraseRule("upgrade", "analyst", r"\bupgrad(?:e|es|ed|ing)\b", 2.3),
    PhraseRule("downgrade", "analyst", r"\bdowngrad(?:e|es|ed|ing)\b", -2.3),

    # --- credit and distress
    PhraseRule("files_for_bankruptcy", "distress",
               r"\b(?:files?|filed|filing|seeks?|sought|seeking|prepares?|preparing|mulls?|considers?|"
               r"considering|weighs?|weighing|plans?|nears?|nearing|heads?\s+(?:for|toward)|enters?|entered|"
               r"put\s+into|placed\s+(?:in|into)|collapses?\s+into|falls?\s+into)\s+(?:for\s+)?"
               r"(?:chapter\s+(?:11|7|15)|bankruptcy|insolvency|administration|receivership|liquidation|"
               r"creditor\s+protection)\b", -3.5),
    PhraseRule("bankruptcy", "distress",
               r"\bchapter\s+(?:11|7|15)\b|\bbankrupt(?:cy|cies)?\b|\binsolven(?:t|cy)\b|\breceivership\b|"
               r"\bliquidation\b|\badministrators?\s+appointed\b", -3.0),
    PhraseRule("debt_default", "distress",
               r"\b(?:defaults?|defaulted|defaulting)\s+on\b|\b(?:debt|bond|loan|sovereign|payment)\s+defaults?\b|"
               r"\b(?:misses|missed|miss|skips?|skipped|fails?\s+to\s+make|failed\s+to\s+make)\s+(?:an?\s+|its\s+)?"
               r"_W_?(?:coupon|interest|bond|debt|loan)\s+payments?\b", -3.0),
    PhraseRule("going_concern", "distress", r"\bgoing[- ]concern\b", -2.8, priority=2),
    PhraseRule("delisting", "distress", r"\bdelist(?:s|ed|ing)?\b|\bdelisting\s+(?:notice|warning)\b", -2.3),
    PhraseRule("junk", "distress", r"\b(?:junk|distressed)\s+(?:status|territory|rating|levels?)\b|\bcut\s+to\s+junk\b", -2.3),
    PhraseRule("liquidity_crunch", "distress",
               r"\b(?:liquidity|cash|funding|credit)\s+(?:crunch|crisis|squeeze|shortfall|woes|concerns|problems)\b|"
               r"\bmargin\s+calls?\b|\bdebt\s+restructuring\b|\brescue\s+(?:deal|package|financing|loan|plan)\b|"
               r"\bbank\s+run\b", -2.3),

    # --- corporate actions
    PhraseRule("dividend_cut", "corporate",
               r"\b(?:cut|cuts|cutting|slash(?:es|ed|ing)?|reduce[sd]?|reducing|lower(?:s|ed)?|trim(?:s|med)?|"
               r"suspend(?:s|ed|ing)?|scrap(?:s|ped)?|halt(?:s|ed)?|cancel(?:s|led|ed)?|eliminate[sd]?|"
               r"omit(?:s|ted)?|skip(?:s|ped)?|axe[sd]?|pause[sd]?|freez(?:e|es)|froze|end(?:s|ed)?)\s+"
               r"_W_{0,3}?(?:dividends?|payouts?|distributions?|buybacks?|buy-backs?|repurchases?)\b|"
               r"\b(?:dividend|payout|buyback)\s+(?:cut|suspension|reduction|freeze)s?\b", -2.8),
    PhraseRule("dividend_hike", "corporate",
               r"\b(?:raise[sd]?|raising|hike[sd]?|hiking|increase[sd]?|increasing|boost(?:s|ed)?|lift(?:s|ed)?|"
               r"up(?:s|ped)?|doubles?|doubled|expands?|expanded)\s+_W_{0,3}?(?:dividends?|payouts?|"
               r"distributions?|buybacks?|buy-backs?|repurchases?)\b|\b(?:dividend|payout)\s+(?:hike|increase|"
               r"raise|boost)s?\b|\bspecial\s+dividend\b|\b(?:initiates?|reinstates?|resumes?|restores?|"
               r"launches?|unveils?|announces?|approves?|authori[sz]es?)\s+_W_{0,3}?(?:dividends?|"
               r"buybacks?|buy-backs?|repurchases?)\b", 2.3),
    PhraseRule("buyback", "corporate",
               r"\b(?:share\s+|stock\s+)?(?:buy[- ]?backs?|repurchases?|repurchasing)\b|"
               r"\bbuy(?:s|ing)?\s+back\s+_W_?(?:shares|stock)\b", 2.0),
    PhraseRule("layoffs", "corporate",
               r"\blay(?:s|ing)?\s+off\b|\blaid\s+off\b|\blayoffs?\b|\bjob\s+(?:cuts|losses|reductions)\b|"
               r"\b(?:cut|cuts|cutting|slash(?:es|ed|ing)?|eliminate[sd]?|eliminating|shed(?:s|ding)?|"
               r"axe[sd]?|axing|trim(?:s|med|ming)?|reduce[sd]?|reducing)\s+_W_{0,3}?(?:jobs|staff|"
               r"workers|employees|workforce|positions|roles|headcount)\b|\bredundanc(?:y|ies)\b|"
               r"\bhiring\s+freeze\b|\bdownsiz(?:e|es|ed|ing)\b|\bplant\s+clos(?:ure|ures|ing)\b", -2.2),
    PhraseRule("closures", "corporate",
               r"\b(?:close[sd]?|closing|shut(?:s|ting)?|shutter(?:s|ed|ing)?)\s+_W_{0,2}?(?:stores|shops|plants?|"
               r"factories|branches|offices|locations|sites|mines?|restaurants|outlets|refinery|refineries)\b|"
               r"\b(?:store|plant|branch|factory|mine)\s+closures?\b", -1.8),
    PhraseRule("openings", "corporate",
               r"\b(?:open(?:s|ing)?|add(?:s|ing)?|build(?:s|ing)?)\s+_W_{0,2}?new\s+(?:stores|shops|plants?|"
               r"factories|branches|locations|restaurants|outlets)\b", 1.2),
    PhraseRule("hiring", "corporate",
               r"\b(?:to\s+)?(?:hire[sd]?|hiring|add(?:s|ed|ing)?|create[sd]?|creating)\s+_W_{0,2}?"
               r"(?:new\s+)?(?:jobs|workers|employees|staff|positions)\b", 1.5),
    PhraseRule("cost_cuts", "corporate",
               r"\bcost[- ]cutting\b|\bcost\s+(?:cuts|savings|reductions)\b|\bcuts?\s+costs\b|"
               r"\befficiency\s+(?:drive|program(?:me)?|plan|gains)\b", 1.2),
    PhraseRule("takeover_interest", "corporate",
               r"\b(?:receives?|received|gets?|got|draws?|drew|attracts?|attracted|fields?)\s+(?:an?\s+)?"
               r"_W_{0,2}?(?:takeover|buyout|acquisition)\s+(?:bid|offer|approach|interest)\b|"
               r"\b(?:agrees?\s+)?to\s+be\s+(?:acquired|bought|taken\s+private)\b|\b(?:sweetens?|raises?)\s+"
               r"(?:its\s+)?(?:takeover\s+)?(?:bid|offer)\b|\bpremium\s+of\s+\d", 1.8),
    PhraseRule("deal_collapse", "corporate",
               r"\b(?:deal|merger|takeover|acquisition|talks|bid|offer|tie-up)\s+_W_{0,3}?(?:collapses?|"
               r"collapsed|falls?\s+through|fell\s+through|fails?|failed|scrapped|terminated|called\s+off|"
               r"abandoned|blocked|rejected|stall(?:s|ed)?)\b|\b(?:terminates?|terminated|abandons?|abandoned|"
               r"scraps?|scrapped|calls?\s+off|called\s+off|walks?\s+away\s+from|blocks?|blocked|rejects?|"
               r"rejected|sues?\s+to\s+block)\s+_W_{0,3}?(?:deal|merger|takeover|acquisition|bid|offer|"
               r"tie-up)\b", -2.3),
    PhraseRule("wins_deal", "corporate",
               r"\b(?:inks?|inked|signs?|signed|clinch(?:es|ed)?|seals?|sealed|secures?|secured|"
               r"wins?|won|lands?|landed|bags?|bagged|awarded|nabs?|nabbed)\s+_W_{0,4}?(?:deal|contract|"
               r"agreement|pact|partnership|orders?|tie-up|alliance|collaboration|licen[cs]e|licensing)\b", 1.8),
    PhraseRule("dilution", "corporate",
               r"\b(?:secondary|follow-on|stock|share|equity|dilutive|convertible)\s+(?:offering|sale|issue|"
               r"issuance|placement)\b|\bat[- ]the[- ]market\s+offering\b", -1.6),
    PhraseRule("ipo_priced_above", "corporate",
               r"\b(?:ipo|listing|offering|shares)\s+_W_{0,3}?(?:priced\s+)?(?:above|at\s+the\s+top\s+of)\s+"
               r"(?:the\s+)?_W_?range\b|\boversubscribed\b", 1.6),
    PhraseRule("ipo_trouble", "corporate",
               r"\b(?:postpones?|postponed|pulls?|pulled|shelves?|shelved|delays?|delayed|scraps?|scrapped)\s+"
               r"(?:its\s+|planned\s+)*(?:ipo|listing|offering|debut)\b|\b(?:priced\s+)?(?:below|at\s+the\s+"
               r"(?:low|bottom)\s+(?:end\s+)?of)\s+(?:the\s+)?_W_?range\b", -1.8),
    PhraseRule("management_exit", "corporate",
               r"\b(?:ceo|cfo|coo|chief\s+executive|chief\s+financial\s+officer|chairman|chair|founder|boss)\s+"
               r"_W_{0,3}?(?:resigns?|resigned|quits?|steps?\s+down|stepped\s+down|ousted|fired|"
               r"departs?|departed|exits?|exited|to\s+leave|leaves|sacked|is\s+out)\b|\b(?:ousts?|ousted|"
               r"fires?|fired|sacks?|sacked)\s+(?:its\s+)?(?:ceo|cfo|chief|chairman|boss|founder)\b|"
               r"\babrupt\s+(?:departure|exit|resignation)\b", -1.8),
    PhraseRule("labour_strike", "operations",
               r"\b(?:workers|union|unions|staff|pilots|employees|dockworkers|drivers|nurses|machinists|"
               r"miners|crews?)\s+_W_{0,2}?(?:strike|strikes|walk\s*out|walkout)\b|\b(?:on|go\s+on|"
               r"goes\s+on|went\s+on|threatens?|threaten|vote\s+to|votes\s+to)\s+strike\b|\bstrike\s+"
               r"(?:at|halts|hits|shuts|disrupts|action)\b", -2.0),
    PhraseRule("strike_resolved", "operations",
               r"\b(?:ends?|ended|settles?|settled|resolves?|resolved|calls?\s+off|called\s+off)\s+"
               r"_W_{0,2}?strike\b|\bstrike\s+(?:ends|ended|over|deal)\b", 1.5, priority=1),
    PhraseRule("strikes_deal", "corporate",
               r"\b(?:strikes?|struck)\s+_W_{0,3}?(?:deal|agreement|pact|accord|partnership|tie-up|"
               r"alliance)\b", 1.8, priority=1),

    # --- legal and regulatory
    PhraseRule("regulatory_probe", "legal",
               rf"\b{_SUBJECT}\b_SW_{{0,3}}?\s+{_LEGAL}\b|\b(?:probe|investigation|inquiry)\s+"
               r"(?:into|of|over|by|on)\b|\bsubpoena(?:s|ed)?\b|\bunder\s+(?:investigation|scrutiny|fire)\b|"
               r"\bindict(?:s|ed|ment)\b|\b(?:faces?|facing|hit\s+with|hit\s+by)\s+_W_{0,3}?(?:probe|"
               r"investigation|lawsuits?|suits?|charges|fines?|scrutiny|class\s+action|backlash|penalt\w+)\b|"
               r"\bclass[- ]action\b|\bwhistleblower\b|\b(?:sued|charged|fined|probed|investigated|"
               r"subpoenaed|raided|penali[sz]ed|censured|sanctioned|accused)\s+by\b", -2.3),
    PhraseRule("probe_closed", "legal",
               r"\b(?:ends?|ended|closes?|closed|drops?|dropped|dismiss(?:es|ed)?|resolves?|resolved|wins?|won|"
               r"clears?|cleared)\s+_W_{0,3}?(?:probe|investigation|inquiry|lawsuit|suit|case|charges|"
               r"dispute|litigation|appeal)\b|\b(?:probe|investigation|inquiry|lawsuit|suit|case|charges)\s+"
               r"_W_?(?:dismissed|dropped|closed|ended|tossed|thrown\s+out)\b|\bcleared\s+of\b|"
               r"\bconcludes?\s+without\s+action\b", 1.8, priority=1),
    PhraseRule("settlement", "legal",
               r"\b(?:settles?|settled|settling|settlement|agrees?\s+to\s+pay)\b_SW_{0,5}?\s+(?:probe|"
               r"investigation|inquiry|lawsuits?|suits?|case|charges|claims|dispute|litigation|allegations)\b",
               -0.5, priority=1),
    PhraseRule("regulatory_approval", "legal",
               r"\b(?:fda|ema|regulators?|regulatory|ftc|sec|eu|european\s+commission|cma|antitrust|"
               r"watchdogs?)\b_SW_{0,3}?\s+(?:approv\w+|clear(?:s|ed|ance)|green[- ]lights?|"
               r"green[- ]lighted|nod|authori[sz]\w+|sign[- ]off|backs?|backed)\b|\b(?:wins?|won|gets?|got|"
               r"receives?|received|secures?|secured|obtains?|obtained|grants?|granted)\s+_W_{0,3}?"
               r"(?:approval|clearance|authori[sz]ation|green\s+light|nod|licen[cs]e|go-ahead)\b", 2.5, priority=1),
    PhraseRule("regulatory_rejection", "legal",
               r"\b(?:fda|ema|regulators?|ftc|eu|european\s+commission|cma|watchdogs?)\b_SW_{0,3}?\s+"
               r"(?:rejects?|rejected|declines?\s+to\s+approve|denies|denied|blocks?|blocked|refuses?|"
               r"refused)\b|\bcomplete\s+response\s+letter\b|\bclinical\s+hold\b", -2.5, priority=1),
    PhraseRule("trial_success", "legal",
               r"\b(?:meets?|met|hits?|achieves?|achieved|succeeds?\s+in|reaches?|reached)\s+_W_{0,2}?"
               r"(?:primary|main|key|secondary|co-primary)\s+(?:end\s?points?|goals?)\b|\b(?:trial|study)\s+"
               r"_W_{0,2}?(?:succeeds?|success|positive|met)\b|\bpositive\s+_W_{0,2}?"
               r"(?:trial|study|data|results)\b", 2.5),
    PhraseRule("trial_failure", "legal",
               r"\b(?:misses?|missed|fails?|failed)\s+_W_{0,2}?(?:primary|main|key|co-primary)\s+"
               r"(?:end\s?points?|goals?)\b|\b(?:trial|study)\s+_W_{0,2}?(?:fails?|failed|failure|"
               r"halted|stopped|disappoints?|flops?)\b", -2.6),
    PhraseRule("recall", "operations", r"\brecall(?:s|ed|ing)?\b", -2.0),
    PhraseRule("halted", "operations",
               r"\b(?:halt(?:s|ed|ing)?|suspend(?:s|ed|ing)?|stops?|stopped|pauses?|paused|shuts?\s+down|"
               r"shut\s+down|idles?|idled|freezes?|froze)\s+_W_{0,2}?(?:production|operations|output|"
               r"trading|shipments|sales|deliveries|plant|factory|factories|mine|withdrawals|redemptions|"
               r"work|services|flights)\b|\btrading\s+(?:halt|halted|suspended|suspension)\b|"
               r"\b(?:halted|suspended)\b", -2.2),
    PhraseRule("ends_losing_streak", "market",
               r"\b(?:halts?|halted|snaps?|snapped|ends?|ended|breaks?|broke|stems?|stemmed|stops?|stopped|"
               r"arrests?|reverses?|reversed|pares?|pared|recoups?|recouped|erases?|erased|shakes?\s+off)\s+"
               r"_W_{0,3}?(?:losing\s+streak|slide|decline|declines|selloff|sell-off|slump|losses|rout|"
               r"skid|drop|downtrend)\b", 1.5, priority=1),
    PhraseRule("extends_losses", "market",
               r"\b(?:extends?|extended|deepens?|deepened|adds?\s+to)\s+_W_{0,2}?(?:losses|slide|decline|"
               r"declines|losing\s+streak|selloff|sell-off|slump|rout|skid|drop)\b", -2.0, priority=1),
    PhraseRule("extends_gains", "market",
               r"\b(?:extends?|extended|adds?\s+to|builds?\s+on)\s+_W_{0,2}?(?:gains|rally|winning\s+"
               r"streak|advance|rebound|recovery|surge)\b", 2.0, priority=1),
    PhraseRule("cyber_and_outage", "operations",
               r"\bdata\s+breach\b|\bcyber[- ]?attacks?\b|\bhack(?:ed|ers?)\b|\bransomware\b|\boutages?\b|"
               r"\bsystem\s+failure\b|\bsecurity\s+(?:breach|incident|flaw)\b", -2.0),
    PhraseRule("accounting_trouble", "legal",
               r"\baccounting\s+(?:irregularit\w+|scandal|probe|errors?|issues|problems|fraud)\b|"
               r"\brestat(?:e|es|ed|ing|ement)\b|\bshort[- ]sellers?\b|\bshort\s+report\b|\bfraud\b|"
               r"\bembezzl\w+|\bmisconduct\b|\bponzi\b", -2.5),
    PhraseRule("supply_trouble", "operations",
               r"\b(?:supply|chip|parts|component)\s+(?:shortages?|constraints|disruptions?|problems|woes|"
               r"issues)\b|\bproduction\s+(?:delays?|problems|issues|woes|cuts)\b|\bdelays?\s+_W_?"
               r"(?:launch|deliveries|production|shipments|rollout)\b", -2.0),

    # --- market moves: direction applied to a metric ("sales fell", "costs rise", "drop in profit")
    PhraseRule("metric_up", "market", rf"\b{_METRIC}\b{_METRIC_GAP}\s+{_UP}\b{_LEVEL_TAIL}", 2.0),
    PhraseRule("metric_down", "market", rf"\b{_METRIC}\b{_METRIC_GAP}\s+{_DOWN}\b{_LEVEL_TAIL}", -2.0),
    PhraseRule("metric_higher", "market",
               rf"\b{_METRIC}\s+(?:{_TRADE_VERB}\s+)?(?:higher|up(?=\s+[\d$]))\b", 1.6),
    PhraseRule("metric_lower", "market",
               rf"\b{_METRIC}\s+(?:{_TRADE_VERB}\s+)?(?:lower|down(?=\s+[\d$]))\b", -1.6),
    PhraseRule("inverse_metric_up", "market", rf"\b{_INVERSE}\b{_METRIC_GAP}\s+{_UP}\b{_LEVEL_TAIL}", -2.0),
    PhraseRule("inverse_metric_down", "market", rf"\b{_INVERSE}\b{_METRIC_GAP}\s+{_DOWN}\b{_LEVEL_TAIL}", 2.0),
    PhraseRule("rise_in_metric", "market",
               rf"\b{_UP_NOUN}\s+(?:in|of)\s+_W_{{0,2}}?{_METRIC}\b", 2.0),
    PhraseRule("drop_in_metric", "market",
               rf"\b{_DOWN_NOUN}\s+(?:in|of)\s+_W_{{0,2}}?{_METRIC}\b", -2.0),
    PhraseRule("rise_in_inverse", "market",
               rf"\b{_UP_NOUN}\s+(?:in|of)\s+_W_{{0,2}}?{_INVERSE}\b", -2.0),
    PhraseRule("drop_in_inverse", "market",
               rf"\b{_DOWN_NOUN}\s+(?:in|of)\s+_W_{{0,2}}?{_INVERSE}\b", 2.0),
    PhraseRule("reduces_inverse", "market",
               rf"\b(?:narrow(?:s|ed|ing)?|trim(?:s|med|ming)?|cut(?:s|ting)?|reduce[sd]?|reducing|shrink(?:s|ing)?|"
               rf"shrank|pare[sd]?|slash(?:es|ed|ing)?|lower(?:s|ed|ing)?|halve[sd]?|pay(?:s|ing)?\s+down|"
               rf"paid\s+down){_MODS}\s+{_INVERSE}\b", 1.8),
    PhraseRule("widens_inverse", "market",
               rf"\b(?:widen(?:s|ed|ing)?|deepen(?:s|ed|ing)?|double[sd]?|triple[sd]?|balloon(?:s|ed)?|"
               rf"swell(?:s|ed)?){_MODS}\s+{_INVERSE}\b", -2.0),
    PhraseRule("rising_inverse", "market", rf"\b{_UP_ADJ}\s+_W_?{_INVERSE}\b", -1.8),
    PhraseRule("falling_inverse", "market", rf"\b{_DOWN_ADJ}\s+_W_?{_INVERSE}\b", 1.8),
    PhraseRule("rising_metric", "market", rf"\b(?:rising|soaring|surging|higher|climbing|growing|increasing)\s+{_METRIC}\b", 1.6),
    PhraseRule("falling_metric", "market", rf"\b(?:falling|declining|lower|shrinking|slowing|sliding|plunging|slumping)\s+{_METRIC}\b", -1.6),
    PhraseRule("expects_loss", "guidance",
               rf"\b(?:expects?|expected|sees?|saw|forecasts?|predicts?|projects?|anticipates?|flags?|signals?)"
               rf"\s+(?:an?\s+)?_W_{{0,2}}?(?:{_INVERSE}|decline|drop|fall|contraction|slowdown|downturn|"
               rf"recession)\b(?!\s+to\s)", -1.8),
    PhraseRule("expects_growth", "guidance",
               r"\b(?:expects?|expected|sees?|saw|forecasts?|predicts?|projects?|anticipates?|flags?|signals?)"
               r"\s+(?:an?\s+)?_W_{0,2}?(?:growth|gains?|increase|rise|rebound|recovery|expansion)\b(?!\s+to\s)", 1.5),
    PhraseRule("less_than_feared", "earnings",
               r"\b(?:less|smaller|milder|shallower|not\s+as\s+(?:bad|steep|deep|severe))\s+(?:than|as)\s+feared\b|"
               r"\bbetter[- ]than[- ]feared\b", 2.0, priority=1),
    # "rises more than expected": the surprise scales the move it follows (INTENSIFIERS), no more
    PhraseRule("than_expected", "neutral",
               r"\b(?:more|faster|quicker|sharper|further|less|slower|smaller)\s+than\s+(?:expected|forecast|"
               r"anticipated|estimated|predicted)\b", 0.0, priority=1),
    PhraseRule("hopes_dashed", "market",
               r"\b(?:dash(?:es|ed|ing)?|crush(?:es|ed|ing)?|dent(?:s|ed|ing)?|dim(?:s|med|ming)?|deflat(?:e|es|ed|ing)|"
               r"puncture[sd]?|fade|fades|faded|fading|evaporate[sd]?)\s+_W_{0,3}?hopes\b|\bhopes\s+"
               r"(?:fade|fades|faded|fading|dim|dims|dimmed|evaporate|evaporated|recede|receded|dashed|wane|wanes|"
               r"waned)\b", -2.0, priority=1),
    PhraseRule("hurt_by", "market",
               r"\b(?:hurt|hit|weighed\s+(?:on|down)|dented|dragged(?:\s+down)?|hampered|hammered|battered|"
               r"pressured|squeezed|crimped|held\s+back|undercut)\s+by\b_SW_{0,3}", -2.0),
    PhraseRule("helped_by", "market",
               r"\b(?:boosted|lifted|helped|buoyed|supported|propelled|powered|fuel(?:l)?ed|underpinned)\s+by\b"
               r"_SW_{0,3}", 1.8),
    PhraseRule("raises_concerns", "market",
               r"\b(?:raise[sd]?|raising|spark(?:s|ed|ing)?|fuel(?:s|ed|led|ing)?|stoke[sd]?|stoking|add(?:s|ed)?\s+to|"
               r"deepen(?:s|ed)?|heighten(?:s|ed)?|revive[sd]?)\s+_W_{0,2}?(?:concerns?|doubts?|fears?|worries|"
               r"questions|alarm|red\s+flags?|jitters|uncertainty)\b", -1.8, priority=1),
    PhraseRule("hopes_raised", "market",
               r"\b(?:boost(?:s|ed|ing)?|lift(?:s|ed|ing)?|raise[sd]?|raising|fuel(?:s|ed|led|ing)?|revive[sd]?|"
               r"reviving|stoke[sd]?|stoking|spark(?:s|ed)?)\s+_W_{0,3}?(?:hopes|optimism|confidence)\b",
               1.6, priority=1),
    PhraseRule("trading_range", "neutral", r"\b(?:narrow|tight|wide|broad)\s+(?:trading\s+)?range\b", 0.0, priority=1),
    PhraseRule("bull_market", "market", r"\bbull\s+(?:market|run|case)\b", 2.0),
    PhraseRule("bear_market", "market", r"\bbear\s+(?:market|territory|case)\b|\bcorrection\s+territory\b", -2.0),

    # --- macro: policy acts are neutral in themselves (markets move on surprises, not on the act)
    PhraseRule("rate_decision", "macro",
               r"\b(?:cut|cuts|cutting|hike[sd]?|hiking|raise[sd]?|raising|lower(?:s|ed|ing)?|hold(?:s|ing)?|"
               r"held|keep(?:s|ing)?|kept|leave[sd]?|leaving|left|pause[sd]?|pausing)\s+_W_{0,2}?"
               r"(?:interest\s+|benchmark\s+|policy\s+|key\s+)?rates?\b(?:\s+(?:steady|unchanged|on\s+hold))?"
               + _LEVEL_TAIL + r"|\brate\s+(?:cuts?|hikes?|decision|increases?|rises?|path|outlook)\b|"
               r"\b(?:interest|policy|benchmark)\s+rates?\b", 0.0, priority=1),
    PhraseRule("rates_move", "macro",
               rf"\b(?:rates|yields?|treasury\s+yields?){_METRIC_GAP}\s+(?:{_UP}|{_DOWN})\b", 0.0),
    PhraseRule("soft_landing", "macro", r"\bsoft\s+landing\b", 1.5),
    PhraseRule("hard_landing", "macro", r"\bhard\s+landing\b|\brecession\s+(?:fears|risks?|warning|looms)\b", -2.0),
    PhraseRule("neutral_phrases", "neutral",
               r"\bcredit\s+(?:card|cards|suisse|agricole|rating|facility|line)\b|\bhealth\s*care\b|"
               r"\btop\s+(?:executive|official|job|spot|team|brass)\b|\b(?:unchanged|flat|steady|little\s+"
               r"changed|in\s+talks|to\s+report|scheduled|set\s+to\s+announce)\b|\bbest\s+buy\b|"
               r"\bsuper\s+micro\b|\bfree\s+float\b", 0.0),
)


# In the patterns above, "_W_" is one word of the same clause followed by its space, "_SW_" a
# space then one such word, and "_GAP_" one such word: short gaps that never cross a comma or a
# conjunction ("Boeing averts strike as machinists approve contract" is not "strike ... contract").
_PLACEHOLDERS = {"_W_": rf"(?:{_GAP}\s+)", "_SW_": rf"(?:\s+{_GAP})", "_GAP_": rf"(?:{_GAP})"}


def _expand(pattern: str) -> str:
    for key, value in _PLACEHOLDERS.items():
        pattern = pattern.replace(key, value)
    return pattern


PHRASE_RULES = tuple(PhraseRule(r.name, r.family, _expand(r.pattern), r.weight, r.priority) for r in PHRASE_RULES)
