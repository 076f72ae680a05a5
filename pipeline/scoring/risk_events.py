"""Risk-event tags: which adverse corporate events an article reports, whatever its tone.

The sentiment model learned "profit falls" and "shares slide" from Financial PhraseBank; it reads
"chairman arrested" or "regulator grounds jets" as neutral. Risk-event tagging closes that gap
with a lexicon (the seed's own formula is Score_t = f(lexicon, x_1..x_t)): each category of the
taxonomy below is a set of phrase patterns, matched on the headline and the first part of the
body. An article's `risk_score` is the strongest match (1.0 for a phrase that names the event,
0.6 for one that usually does); its `risk_tags` are the categories matched at 0.6 or more.

The taxonomy follows the adverse-event classes that news-analytics and reputational-risk
vendors publish (insolvency, fraud and accounting, legal action against executives, regulatory
action, litigation and fines, product recalls and safety, accidents and disasters, workforce
reductions, boycotts and controversies, liquidity and credit stress, cyber incidents, earnings
warnings, delistings); it was written from that domain, not from any evaluation set. Measure its
precision and recall with `bench/risk_tags.py` on the hand-labelled sample it ships.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAGGED_CHARACTERS = 600
"""Headline plus the start of the body: where news states the event (a long body mentions everything)."""
TAG_THRESHOLD = 0.6
NAMES_THE_EVENT = 1.0
USUALLY_THE_EVENT = 0.6


@dataclass(frozen=True)
class RiskCategory:
    name: str
    description: str
    strong: tuple[str, ...]
    """Phrases that name the event (score 1.0)."""
    weak: tuple[str, ...] = ()
    """Phrases that usually report it but have benign readings too (score 0.6)."""


TAXONOMY: tuple[RiskCategory, ...] = (
    RiskCategory(
        "insolvency", "bankruptcy, insolvency, administration, default on debt",
        (r"bankrupt(cy|cies)?", r"chapter (11|7|15)", r"insolven(t|cy)", r"(files?|filing|filed) for (bankruptcy|insolvency|protection)",
         r"(enters?|entered|placed in(to)?) (administration|receivership|liquidation)", r"receivership", r"creditor protection",
         r"default(s|ed)? on (its )?(debt|bonds?|loans?|payments?)", r"miss(es|ed)? (an? )?((bond|debt|interest|coupon|loan) ){1,2}payments?"),
        (r"liquidation", r"\bdefault(s|ed)?\b", r"debt restructuring", r"wind(s|ing)? down"),
    ),
    RiskCategory(
        "fraud", "fraud, accounting irregularities, bribery, money laundering, market manipulation",
        (r"fraud(s|ulent|ulently|sters?)?", r"accounting (irregularit(y|ies)|scandal|problems?|errors?|fraud)", r"embezzl\w*",
         r"ponzi", r"money[- ]laundering", r"brib(e|es|ery|ed|ing)", r"kickbacks?", r"fabricat(ed|ing|ion)", r"falsif(y|ied|ying|ication)",
         r"cook(ed|ing) the books", r"(market|price|rate|benchmark) manipulation", r"misstat(ed|ement|ements)",
         r"(cannot|can't|could not|unable to) (find|locate|account for)", r"missing (cash|funds|money|billions?)"),
        (r"restat(e|es|ed|ing|ement)", r"whistle-?blowers?", r"irregularit(y|ies)", r"sham", r"short[- ]seller (report|attack)",
         r"corruption"),
    ),
    RiskCategory(
        "executive_legal", "arrest, indictment, charges or conviction of the company or its executives",
        (r"arrest(s|ed|ing)?", r"indict(s|ed|ment)", r"(criminal|fraud) charges?", r"charged with", r"detain(s|ed|ing)?",
         r"jail(s|ed)?", r"sentenced", r"convicted", r"extradit\w*", r"guilty plea", r"pleads? guilty", r"raid(s|ed)? (by|on)"),
        (r"prosecut(e|es|ed|ors?|ion)", r"custody"),
    ),
    RiskCategory(
        "leadership_crisis", "sudden exit or ouster of the chief executive, chair or auditor",
        (r"(ceo|chief executive|chairman|chair|founder|cfo|auditor)s? (ousted|fired|sacked|resigns?|quits?|steps? down)",
         r"(oust|fire|sack|remove)s? (its |the )?(ceo|chief executive|chairman|chair|founder|cfo)",
         r"auditor (resigns|quits|refuses|declines)"),
        (r"(resigns?|steps? down|ousted|ouster)",),
    ),
    RiskCategory(
        "regulatory_action", "investigations, subpoenas, sanctions, bans and enforcement by authorities",
        (r"(sec|ftc|doj|fca|cftc|finra|regulators?|prosecutors?|authorities|justice department|antitrust) (probe|probes|investigat\w*|subpoena\w*|charges?|sues?|raid\w*)",
         r"subpoena(s|ed)?", r"antitrust (probe|case|charges?|investigation|lawsuit|fine)", r"sanction(s|ed)? (on|against)",
         r"cease[- ]and[- ]desist", r"licen[cs]e (revoked|suspended|withdrawn)", r"(banned|bans) (\w+ ){0,3}from"),
        (r"\bprobes?\b", r"investigat(e|es|ed|ing|ion|ions)", r"\bsanctions?\b", r"regulatory (action|scrutiny)", r"crackdown"),
    ),
    RiskCategory(
        "litigation_fines", "lawsuits, class actions, damages, fines and penalties",
        (r"class[- ]action", r"lawsuits?", r"(fined|fines?|penalt(y|ies)) (of )?(\$|€|£|usd |eur |gbp )?\d[\d,.]*", r"(is|was|were|gets?|got) fined",
         r"(ordered|agrees?|agreed) to pay", r"damages (award|claim)", r"jury (verdict|orders|awards)", r"record fine"),
        (r"\bsue(s|d)?\b", r"\bsuing\b", r"litigation", r"\bfines?\b", r"\bpenalt(y|ies)\b", r"settle(s|d|ment)? (charges|claims|lawsuit|probe)"),
    ),
    RiskCategory(
        "recall_safety", "product recalls, groundings, production halts, safety defects",
        (r"recall(s|ed|ing)?", r"ground(s|ed|ing)? (\w+ ){0,5}(jets?|planes?|fleet|aircraft|flights?)",
         r"(jets?|planes?|fleet|aircraft) (grounded|grounding)", r"grounding", r"safety (defects?|flaws?|scare|crisis|probe|warnings?)",
         r"(halts?|suspends?|stops?) (production|deliveries|shipments|sales)", r"contaminat(ed|ion)"),
        (r"defect(s|ive)?", r"\bflaws?\b", r"safety (concerns?|issues?|questions?)"),
    ),
    RiskCategory(
        "accident_disaster", "crashes, explosions, fires, spills, fatalities, outages",
        (r"(plane|jet|air|train|fatal|deadly) crash(es)?", r"crash(es|ed)? (kills?|killing)", r"explosions?", r"\bblasts?\b",
         r"(oil|chemical|toxic) (spill|leak)s?", r"wildfires?", r"killed", r"deaths?", r"fatal(ity|ities)?", r"dam (collapse|burst)",
         r"derail(s|ed|ment)"),
        (r"\bcrash(es|ed)?\b", r"\bfires?\b", r"disaster", r"outages?", r"\bdead\b", r"collapse[ds]?"),
    ),
    RiskCategory(
        "layoffs", "mass layoffs, job cuts, plant and store closures",
        (r"lay(s|ing)? off", r"lay-?offs?", r"job (cuts|losses)", r"(cut|cuts|cutting|slash(es|ing)?|axe[sd]?|axing|shed(s|ding)?|eliminat\w*) (\d[\d,.]* )?(jobs|staff|workers|employees|positions|roles)",
         r"redundanc(y|ies)", r"(close|closes|closing|shut|shuts|shutting) (\d+ )?(plants?|factor(y|ies)|stores?|mills?|branches)"),
        (r"restructuring", r"downsiz\w*", r"workforce reduction"),
    ),
    RiskCategory(
        "boycott_controversy", "boycotts, backlash, scandals, strikes",
        (r"boycott\w*", r"backlash", r"scandal\w*", r"(workers|staff|employees|pilots|drivers) (strike|walk out|walkout)", r"walk-?outs?"),
        (r"outrage", r"protests?", r"\bstrikes?\b", r"controvers(y|ies|ial)"),
    ),
    RiskCategory(
        "liquidity_crisis", "bank runs, liquidity or funding stress, bailouts, credit downgrades",
        (r"bank run", r"run on (the )?(bank|deposits)", r"liquidity (crisis|crunch|squeeze|problems?|concerns?)", r"bail-?out",
         r"(rescue|emergency) (deal|package|loan|funding|financing|plan)", r"capital (shortfall|hole)", r"margin calls?",
         r"(downgrade[sd]? to|cut to) junk", r"deposit (flight|outflows?)", r"(credit|rating) downgrade"),
        (r"downgrade[sd]?", r"\bjunk\b", r"cash crunch", r"going concern"),
    ),
    RiskCategory(
        "cyber_breach", "data breaches, hacks, ransomware, privacy violations",
        (r"data breach(es)?", r"hack(ed|ers?|ing)", r"cyber-?attacks?", r"ransomware", r"(data|records|passwords) (leak|leaked|exposed|stolen)",
         r"security breach"),
        (r"breach(es|ed)?", r"privacy (violations?|scandal|lapse)", r"\bleak(s|ed)?\b"),
    ),
    RiskCategory(
        "guidance_cut", "profit warnings, lowered guidance, write-downs, dividend cuts",
        (r"profit warning", r"(cuts?|lowers?|slash(es)?|reduces?|trims?) (its |full-year |annual )?(revenue |profit |sales |earnings )?(forecast|outlook|guidance|targets?)",
         r"write-?downs?", r"writ(es|ing) down", r"impairment", r"(cuts?|suspends?|scraps?|slash(es)?) (its )?dividend",
         r"warns? (on|of) (profit|earnings|sales|revenue)"),
        (r"(misses|missed) (estimates|expectations|forecasts)", r"\bwarns?\b"),
    ),
    RiskCategory(
        "delisting", "delistings and trading suspensions",
        (r"delist(s|ed|ing)?", r"(trading|shares) (halted|suspended)", r"(halts|suspends) trading"),
        (),
    ),
)


@dataclass(frozen=True)
class RiskTags:
    score: float
    tags: tuple[str, ...]


class RiskTagger:
    """Tags texts with the taxonomy's categories; compiled once, pure and thread-safe."""

    def __init__(self, taxonomy: tuple[RiskCategory, ...] = TAXONOMY) -> None:
        self._compiled = [
            (category.name, _pattern(category.strong), _pattern(category.weak)) for category in taxonomy
        ]

    def tag(self, text: str) -> RiskTags:
        head = text[:TAGGED_CHARACTERS]
        score = 0.0
        tags: list[str] = []
        for name, strong, weak in self._compiled:
            found = NAMES_THE_EVENT if strong is not None and strong.search(head) else (
                USUALLY_THE_EVENT if weak is not None and weak.search(head) else 0.0)
            if found >= TAG_THRESHOLD:
                tags.append(name)
            score = max(score, found)
        return RiskTags(score, tuple(tags))


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    if not phrases:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(f"(?:{phrase})" for phrase in phrases) + r")(?![\w])", re.IGNORECASE)
