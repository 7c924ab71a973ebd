"""MIMIC-CXR-style free-text reports for the synthetic studies (notebook 01, data prep).

The indication comes from the patient's clinical story, which correlates with the findings but does not
name them; the findings section goes region by region (devices, lungs, pleura, heart and mediastinum,
bones) with several phrasings per finding, laterality and severity words, comparison with the prior
study, hedges for subtle findings and pertinent negatives. Findings the course marked as missed are
left out (and may even be negated), so report-derived labels are noisy like real ones.
"""
from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET

import numpy as np

from cxrkit.synth.course import Finding, StudyPlan

HEADER = " " * 33 + "FINAL REPORT"
WIDTH = 78  # plus the leading space: lines are at most 79 characters

_STORY_TEXT = {
    "infection": (["fever and cough", "productive cough and fever", "leukocytosis and hypoxia", "fevers and chills"],
                  ["eval for pneumonia", "? infiltrate", "eval for acute process"]),
    "heart_failure": (["shortness of breath and leg swelling", "orthopnea and weight gain", "dyspnea, elevated BNP"],
                      ["eval for fluid overload", "eval for acute process"]),
    "dyspnea": (["shortness of breath", "hypoxia", "dyspnea on exertion", "acute respiratory distress"],
                ["eval for acute process", "eval for acute cardiopulmonary process"]),
    "trauma": (["fall from standing", "motor vehicle collision", "chest wall pain after a fall"],
               ["eval for injury", "eval for acute traumatic process"]),
    "chest_pain": (["chest pain", "pleuritic chest pain", "acute onset chest pain"],
                   ["eval for acute process", "eval for acute cardiopulmonary process"]),
    "lines": (["ICU patient", "intubated patient in the ICU", "s/p procedure"],
              ["eval line and tube position", "eval position of lines"]),
    "preop": (["pre-operative evaluation", "preop for elective surgery", "pre-procedure screening"],
              ["eval for acute process", "preop clearance"]),
    "oncology": (["history of malignancy", "weight loss and cough", "hemoptysis"],
                 ["eval for acute process", "eval for interval change"]),
}

#: How a requisition names a finding already known from the patient's history (never the film's own result).
_HISTORY_TEXT = {
    "Cardiomegaly": ["history of CHF", "known cardiomyopathy"],
    "Edema": ["CHF exacerbation", "volume overload on dialysis"],
    "Pleural Effusion": ["known pleural effusion", "recurrent effusions s/p thoracentesis"],
    "Lung Lesion": ["known lung nodule", "history of lung cancer"],
    "Pneumothorax": ["recent pneumothorax", "pneumothorax s/p chest tube"],
    "Pneumonia": ["recent pneumonia", "on antibiotics for pneumonia"],
    "Consolidation": ["known RLL opacity", "recent pneumonia"],
    "Atelectasis": ["post-operative, splinting", "recent abdominal surgery"],
    "Fracture": ["recent rib fractures", "known rib fractures"],
    "Enlarged Cardiomediastinum": ["known thoracic aortic aneurysm", "history of aortic aneurysm"],
}
#: Findings a clinician may know of before a patient's first film here (chronic disease).
_CHRONIC = ("Cardiomegaly", "Lung Lesion", "Enlarged Cardiomediastinum", "Edema")
#: Chance that each known finding of the history is written into the indication.
_HISTORY_MENTION = 0.5

_DEVICE_TEXT = {
    "ett": ["Endotracheal tube terminates approximately {cm} cm above the carina.",
            "The endotracheal tube is in standard position, {cm} cm above the carina."],
    "ng": ["Enteric tube courses below the diaphragm with the tip in the stomach.",
           "A nasogastric tube passes into the stomach."],
    "cvc_ij": ["Right internal jugular central venous line terminates in the mid SVC.",
               "Right IJ central line with tip in the SVC."],
    "cvc_subclavian": ["Right subclavian central venous line terminates in the lower SVC.",
                       "Right subclavian central line with tip in the SVC."],
    "pacemaker": ["Left-sided pacemaker with leads in the right atrium and right ventricle.",
                  "A left chest wall pacemaker is present with leads terminating in the right atrium and right ventricle."],
    "chest_tube": ["{Side} chest tube in place with the tip at the apex.",
                   "A {side} basilar chest tube is present, tip projecting over the apex."],
}
_DEVICE_NAME = {"ett": "endotracheal tube", "ng": "enteric tube", "cvc_ij": "right internal jugular line",
                "cvc_subclavian": "right subclavian line", "pacemaker": "pacemaker", "chest_tube": "{side} chest tube"}
_LOBE_ZONE = {"right upper lobe": "right upper lung", "right middle lobe": "right lower lung", "right lower lobe": "right base",
              "left upper lobe": "left upper lung", "lingula": "left mid lung", "left lower lobe": "left base"}


def _size_word(sev: float, kind: str = "size") -> str:
    words = {"size": ("small", "moderate", "large"), "deg": ("mild", "moderate", "severe")}[kind]
    return words[0] if sev < 0.35 else words[1] if sev < 0.7 else words[2]


def _finding_sentence(name: str, f: Finding, rng: np.random.Generator, follow: bool) -> tuple[str, str]:
    """Return (findings sentence, impression phrase) for one reported finding."""
    side, sev = f.side, f.severity
    pick = lambda opts: str(opts[int(rng.integers(len(opts)))])  # noqa: E731
    new = "New " if follow and f.change == "new" else ""
    cap = (lambda w: w) if new else (lambda w: w.capitalize())  # noqa: E731
    if name == "Pleural Effusion":
        eff = "pleural effusions" if side == "bilateral" else "pleural effusion"
        if f.hedged:
            s = pick([f"Blunting of the {side} costophrenic angle may represent a trace {eff}.",
                      f"Possible small {side} {eff}."]) if side != "bilateral" else f"Possible small bilateral {eff}."
            return s, f"Possible small {side} {eff}."
        w = _size_word(sev)
        s = pick([f"{new}{cap(w)} {side} {eff}.", f"There is a {w} {side} {eff}."]) if side != "bilateral" \
            else pick([f"{new}{cap(w)} bilateral {eff}.", f"{w.capitalize()} bilateral {eff} are present."])
        if s.startswith("There is a") and side == "bilateral":
            s = f"{w.capitalize()} bilateral {eff}."
        return _change(s, f, follow), f"{w.capitalize()} {side} {eff}."
    if name == "Pneumothorax":
        if f.hedged:
            return f"Possible tiny {side} apical pneumothorax.", f"Possible tiny {side} pneumothorax."
        w = _size_word(sev)
        s = pick([f"{new}{cap(w)} {side} apical pneumothorax.",
                  f"There is a {w} {side} pneumothorax with a visible pleural line.",
                  f"{new}{cap(w)} {side} pneumothorax."])
        return _change(s, f, follow), f"{w.capitalize()} {side} pneumothorax."
    if name == "Consolidation":
        lobe = f.detail.get("lobe", "right lower lobe")
        if f.hedged:
            return f"Possible focal consolidation in the {lobe}.", f"Possible {lobe} consolidation."
        w = "dense" if sev > 0.6 else "focal"
        s = pick([f"{new}{cap(w)} consolidation in the {lobe}.", f"There is {w} consolidation of the {lobe}.",
                  f"{new}{cap(lobe)} consolidation."])
        return _change(s, f, follow), f"{lobe.capitalize()} consolidation."
    if name == "Pneumonia":
        lobe = f.detail.get("lobe", "right lower lobe")
        zone = _LOBE_ZONE.get(lobe, lobe)
        if f.hedged:
            s = pick([f"Subtle opacity at the {zone}; early pneumonia cannot be excluded.",
                      f"Hazy opacity in the {zone} may represent early pneumonia."])
            return s, f"Early pneumonia in the {zone} cannot be excluded."
        w = "patchy" if sev < 0.5 else "extensive patchy"
        s = pick([f"{new}{cap(w)} airspace opacity in the {zone}, consistent with pneumonia.",
                  f"{w.capitalize()} opacities in the {zone} are consistent with pneumonia."])
        return _change(s, f, follow), f"{lobe.capitalize()} pneumonia."
    if name == "Atelectasis":
        where = "lung bases" if side == "bilateral" else f"{side} base"
        if f.hedged:
            return f"Minimal linear opacity at the {where} may represent atelectasis.", f"Possible minimal atelectasis at the {where}."
        w = "plate-like" if f.detail.get("kind") == "plate" else _size_word(sev, "deg")
        s = pick([f"{w.capitalize()} atelectasis at the {where}.", f"There is {w} atelectasis at the {where}.",
                  f"Linear opacities at the {where} reflect {w} atelectasis."])
        return _change(s, f, follow), f"{w.capitalize()} atelectasis at the {where}."
    if name == "Edema":
        if f.hedged:
            return "Possible mild interstitial edema.", "Possible mild pulmonary edema."
        w = _size_word(sev, "deg")
        s = pick([f"{new}{cap(w)} pulmonary edema.",
                  f"Perihilar haziness and vascular indistinctness consistent with {w} pulmonary edema.",
                  f"There is {w} interstitial edema."])
        return _change(s, f, follow), f"{w.capitalize()} pulmonary edema."
    if name == "Lung Lesion":
        kind = f.detail.get("kind", "nodule")
        mm = f.detail.get("size_mm", 10.0)
        zone = "upper" if f.detail.get("a", 0.5) < 0.35 else "lower" if f.detail.get("a", 0.5) > 0.65 else "mid"
        where = f"{side} {zone} lung"
        if f.hedged:
            return f"Possible small nodule in the {where}.", f"Possible {where} nodule; CT may be considered."
        size = f"{mm / 10:.1f} cm" if kind == "mass" else f"{mm:.0f} mm"
        s = pick([f"A {size} {kind} is seen in the {where}.", f"There is a {size} {kind} in the {where}."])
        return _change(s, f, follow), f"{size} {where} {kind}; recommend CT for further evaluation."
    if name == "Cardiomegaly":
        if f.hedged:
            return "Possible mild cardiomegaly.", "Possible mild cardiomegaly."
        w = _size_word(sev, "deg")
        s = pick([f"{w.capitalize()} cardiomegaly.", f"The heart is {w}ly enlarged, consistent with cardiomegaly.",
                  f"{w.capitalize()} enlargement of the cardiac silhouette (cardiomegaly)."])
        if follow and f.change != "new":
            s = f"{w.capitalize()} cardiomegaly is again seen."
        return s, f"{w.capitalize()} cardiomegaly."
    if name == "Enlarged Cardiomediastinum":
        if f.hedged:
            return "Possible widening of the mediastinum.", "Possible mediastinal widening."
        s = pick(["The mediastinum is widened.", "Widened mediastinum.", "There is widening of the mediastinum."])
        return _change(s, f, follow), "Widened mediastinum; consider CT for further evaluation."
    if name == "Fracture":
        rib = f.detail.get("rib", 5) + 1
        nth = {1: "st", 2: "nd", 3: "rd"}.get(rib, "th")
        if f.hedged:
            return f"Possible nondisplaced fracture of the {side} {rib}{nth} rib.", f"Possible {side} {rib}{nth} rib fracture."
        w = "displaced" if sev > 0.5 else "nondisplaced"
        s = pick([f"{w.capitalize()} fracture of the {side} {rib}{nth} rib laterally.",
                  f"There is a {w} {side} {rib}{nth} rib fracture."])
        return s, f"{w.capitalize()} {side} {rib}{nth} rib fracture."
    raise KeyError(name)


def _change(sentence: str, f: Finding, follow: bool) -> str:
    if not follow or f.change == "new":
        return sentence
    tail = {"unchanged": " This is unchanged from the prior study.", "improved": " This has improved compared to the prior study.",
            "worsened": " This has worsened compared to the prior study."}[f.change]
    return sentence + tail


def _devices_text(study: StudyPlan, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    out, impression = [], []
    for dev in study.devices:
        key = "chest_tube" if dev.startswith("chest_tube") else dev
        side = dev.rsplit("_", 1)[1] if key == "chest_tube" else ""
        opts = _DEVICE_TEXT[key]
        s = opts[int(rng.integers(len(opts)))].format(cm=f"{rng.uniform(3.0, 6.0):.1f}", side=side, Side=side.capitalize())
        out.append(s)
    for dev in study.removed_devices:
        key = "chest_tube" if dev.startswith("chest_tube") else dev
        side = dev.rsplit("_", 1)[1] if key == "chest_tube" else ""
        name = _DEVICE_NAME[key].format(side=side)
        out.append(f"The {name} has been removed.")
    if study.devices:
        impression.append("Lines and tubes in appropriate position." if len(study.devices) > 1 else
                          out[0].split(" with ")[0].rstrip(".") + ".")
    return out, impression


_NEG = {"Consolidation": "focal consolidation", "Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax"}
_FINDING_ORDER = ("Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion", "Pleural Effusion", "Pneumothorax",
                  "Cardiomegaly", "Enlarged Cardiomediastinum", "Fracture")


def findings_and_impression(study: StudyPlan, rng: np.random.Generator) -> tuple[str, str]:
    """Return the FINDINGS and IMPRESSION texts of one study, omitting missed findings (notebook 01, data prep)."""
    follow = study.index > 0
    reported = {k: f for k, f in study.findings.items() if not f.missed and k != "Support Devices"}
    body: list[str] = []
    impression: list[str] = []
    if follow:
        body.append(str(rng.choice(["Comparison is made to the prior study.", "Compared to the prior study:",
                                    "As compared to the previous radiograph:"])))
    dev_text, dev_imp = _devices_text(study, rng)
    body += dev_text
    for name in _FINDING_ORDER:
        if name in reported:
            s, imp = _finding_sentence(name, reported[name], rng, follow)
            body.append(s)
            impression.append(imp)
    for name in study.resolved:
        if name in study.findings:
            continue
        word = {"Pleural Effusion": "pleural effusion", "Pneumothorax": "pneumothorax", "Consolidation": "consolidation",
                "Pneumonia": "pneumonia", "Atelectasis": "atelectasis", "Edema": "pulmonary edema"}.get(name)
        if word:
            body.append(f"Previously seen {word} has resolved.")
    lung_terms = ("Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion", "Pleural Effusion", "Pneumothorax")
    if not any(k in reported for k in lung_terms) and rng.random() < 0.5:
        body.append(str(rng.choice(["The lungs are clear.", "Lungs are well expanded and clear."])))
    negs = [v for k, v in _NEG.items() if k not in reported]
    if negs:
        joined = negs[0] if len(negs) == 1 else ", ".join(negs[:-1]) + (", or " if len(negs) > 2 else " or ") + negs[-1]
        body.append(str(rng.choice([f"No {joined}.", f"There is no {joined}."])))
    if "Edema" not in reported and rng.random() < 0.4:
        body.append("No pulmonary edema.")
    if "Cardiomegaly" not in reported:
        if "Enlarged Cardiomediastinum" in reported:
            body.append("Heart size is normal.")
        else:
            body.append(str(rng.choice(["Heart size is normal.", "The cardiomediastinal silhouette is within normal limits.",
                                        "Normal cardiomediastinal silhouette."])))
    elif "Enlarged Cardiomediastinum" not in reported:
        body.append("Mediastinal contours are unremarkable.")
    if "Fracture" not in reported and study.story == "trauma":
        body.append("No displaced rib fracture is identified.")
    elif "Fracture" not in reported and rng.random() < 0.25:
        body.append("No acute osseous abnormality.")
    if not impression:
        base = str(rng.choice(["No acute cardiopulmonary process.", "No acute intrathoracic process.",
                               "No acute cardiopulmonary abnormality."]))
        impression = dev_imp + [base]
    else:  # devices are always named in the impression, the section the labels come from
        impression = impression + dev_imp
    if len(impression) > 1:
        imp_text = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(impression))
    else:
        imp_text = impression[0]
    return " ".join(body), imp_text


def known_history(study: StudyPlan) -> list[str]:
    """Return the findings the requesting clinician already knows of: the prior study's, or a chronic one (notebook 01)."""
    if study.index > 0:
        known = [n for n, f in study.findings.items() if f.change != "new"] + list(study.resolved)
    else:
        known = [n for n in study.findings if n in _CHRONIC]
    return sorted(n for n in set(known) if n in _HISTORY_TEXT)


def indication(study: StudyPlan, rng: np.random.Generator) -> str:
    """Return the INDICATION line: the clinical story plus, at times, the known history (notebook 01).

    Like a real requisition it is written before the film is read, so it may name a finding the patient is
    *known* to have had ("known pleural effusion") — which is often, but not always, still there — and never
    the film's own result. A finding that resolved since the prior study can still be named.
    """
    texts, questions = _STORY_TEXT[study.story]
    text = str(rng.choice(texts))
    if study.story == "lines" and study.devices:
        d = study.devices[0]
        text = {"ett": "intubated patient", "ng": "intubated patient", "pacemaker": "s/p pacemaker placement",
                "cvc_ij": "s/p central line placement", "cvc_subclavian": "s/p central line placement"}.get(
            d, "s/p chest tube placement")
    history = [str(rng.choice(_HISTORY_TEXT[n])) for n in known_history(study) if rng.random() < _HISTORY_MENTION]
    if history:
        text = f"{', '.join(dict.fromkeys(history[:2]))}, now {text}"
    who = "woman" if study.sex == "F" else "man"
    lead = str(rng.choice([f"___ year old {who} with {text}", f"___{study.sex} with {text}", f"History: ___{study.sex} with {text}"]))
    return f"{lead}  // {rng.choice(questions)}"


def _wrap(text: str) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        lines += textwrap.wrap(para, WIDTH) or [""]
    return lines


def report_sections(study: StudyPlan, rng: np.random.Generator) -> dict[str, str]:
    """Return the report's sections (EXAMINATION … IMPRESSION, NOTIFICATION when given) as plain text (notebook 01)."""
    findings, impression = findings_and_impression(study, rng)
    exam = "CHEST (PORTABLE AP)" if study.view == "AP" else "CHEST (PA)"
    technique = str(rng.choice(["Portable AP chest radiograph.", "Single portable frontal view of the chest."])) \
        if study.view == "AP" else str(rng.choice(["PA view of the chest.", "Chest PA."]))
    comparison = "None." if study.index == 0 else str(rng.choice(["___", "Chest radiograph from ___."]))
    sections = {"EXAMINATION": exam, "INDICATION": indication(study, rng), "TECHNIQUE": technique,
                "COMPARISON": comparison, "FINDINGS": findings, "IMPRESSION": impression}
    ptx = study.findings.get("Pneumothorax")
    if ptx is not None and not ptx.missed and ptx.change == "new" and rng.random() < 0.5:
        sections["NOTIFICATION"] = ("The findings were discussed with Dr. ___ by Dr. ___ on the telephone on ___ at ___, "
                                    "within minutes of discovery of the findings.")
    return sections


def format_report(sections: dict[str, str]) -> str:
    """Lay sections out as a MIMIC-CXR report: centred header, one leading space per line, ≤ 79 chars (notebook 01)."""
    out = [HEADER]
    for head, text in sections.items():
        if head in ("FINDINGS", "IMPRESSION"):
            out += [f"{head}: ", "", *_wrap(text), ""]
        else:
            out += [*_wrap(f"{head}:  {text}"), ""]
    out = out[:-1]
    return "\n".join([out[0]] + [" " + line for line in out[1:]]) + "\n"


def report_text(study: StudyPlan, rng: np.random.Generator) -> str:
    """Return the whole report as MIMIC-CXR lays it out (notebook 01, data prep)."""
    return format_report(report_sections(study, rng))


_MESH = {"Pleural Effusion": "Pleural Effusion", "Pneumothorax": "Pneumothorax", "Consolidation": "Consolidation",
         "Pneumonia": "Pneumonia", "Atelectasis": "Pulmonary Atelectasis", "Edema": "Pulmonary Edema",
         "Lung Lesion": "Lung/hypodense", "Cardiomegaly": "Cardiomegaly", "Enlarged Cardiomediastinum": "Mediastinum/wide",
         "Fracture": "Fractures, Bone/ribs", "Support Devices": "Medical Device"}


def openi_xml(study: StudyPlan, sections: dict[str, str], number: int) -> bytes:
    """Return an Open-i (IU X-ray) ``ecgen-radiology`` XML document for one study (notebook 01, data prep)."""
    def deid(text: str) -> str:
        return text.replace("___", "XXXX").replace("\n", " ")

    root = ET.Element("eCitation")
    ET.SubElement(root, "meta", type="rr")
    ET.SubElement(root, "uId", id=f"CXR{number}")
    ET.SubElement(root, "pmcId", id=str(number))
    ET.SubElement(root, "IUXRId", id=str(number))
    ET.SubElement(root, "licenseType").text = "open-access"
    ET.SubElement(root, "licenseURL").text = "http://creativecommons.org/licenses/by-nc-nd/4.0/"
    abstract = ET.SubElement(ET.SubElement(ET.SubElement(root, "MedlineCitation", Owner="Indiana University",
                                                         Status="supplied"), "Article", PubModel="Electronic"), "Abstract")
    for label in ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION"):
        ET.SubElement(abstract, "AbstractText", Label=label).text = deid(sections.get(label, ""))
    mesh = ET.SubElement(root, "MeSH")
    reported = [k for k, f in study.findings.items() if not f.missed]
    if not reported:
        ET.SubElement(mesh, "major").text = "normal"
    for name in reported:
        f = study.findings[name]
        term = _MESH[name] + (f"/{f.side}" if f.side in ("right", "left", "bilateral") else "")
        ET.SubElement(mesh, "major").text = term
    img = ET.SubElement(root, "parentImage", id=f"CXR{number}_IM-{number % 10000:04d}-1001")
    ET.SubElement(img, "figureId").text = "F1"
    ET.SubElement(img, "caption").text = ("Portable AP chest" if study.view == "AP" else "PA chest")
    ET.SubElement(ET.SubElement(img, "panel", type="single"), "url").text = f"/hadoop/storage/radiology/extract/CXR{number}_IM-{number % 10000:04d}-1001.jpg"
    ET.SubElement(img, "imgModality").text = "7"
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
