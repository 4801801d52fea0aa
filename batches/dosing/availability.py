"""Dose availability: for a weight and a protocol (or a patient), which lots and bags can supply each
infusion of the approved regimen, and, for every lot that cannot, the reason in the clinician's terms
with the figures.

Cells needed per infusion = dose per kg x weight. An infusion never mixes lots. Under the "whole_bags"
dose model it is a number of whole bags of one lot whose viable cells fall within the regimen's
tolerance; under "drawn_volume" the pharmacy draws the volume holding exactly the dose from bags of one
lot and the rest is discarded. Residual CD3+ cells and endotoxin are checked per kg on what is actually
delivered: the lot's totals (QC results) in proportion to the viable cells delivered, divided by weight.

The computation (plan_availability) works on plain data; load_lots reads it from the database in a
handful of column queries, so an answer over thousands of bags stays fast.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import ValidationFailed
from batches.dosing.models import PROTOCOLS, DosingRegimen
from batches.quality.models import ISSUABLE_UNIT_STATUSES, FinalProductUnit, QcResult, QualityLot

DOSE_MODELS = ("whole_bags", "drawn_volume")
LOT_STATUS_REASON = {"in_testing": "not released: still in QC testing", "rejected": "rejected by QA",
                     "on_recall": "recalled"}
MAX_EXACT_BAGS = 16  # subsets searched up to this many bags of one lot, greedily beyond
MAX_COMBINATIONS = 4096  # combinations tried per number of bags
BAG_CHUNK = 25  # lots whose bags are read at once
MAX_OPTIONS = 10  # lots listed per infusion before the rest are left unexamined


def cells(value: float | None) -> str:
    from app.web import format_cells

    return format_cells(value)


def num(value: float, digits: int = 3) -> str:
    from batches.quality.specifications import show_number

    return show_number(float(f"{value:.{digits}g}"))


@dataclass
class Bag:
    id: int
    product_identifier: str
    viable_cells: float
    volume_ml: float | None
    expires_at: datetime
    status: str


@dataclass
class Lot:
    lot_number: str
    status: str
    bags: list[Bag] | None = field(default_factory=list)  # issuable, unvoided, not held; None: not loaded yet
    held_bags: int = 0
    total_viable: float = 0.0  # all unvoided bags of the lot, the base of its CD3+ and endotoxin totals
    cd3_total: float | None = None
    endotoxin_total: float | None = None
    engineering_end: datetime | None = None
    cd3_limit_per_kg: float | None = None  # from the lot's specification version
    endotoxin_limit_per_kg: float | None = None

    @property
    def conditional(self) -> bool:
        return self.status == "conditionally_released"


@dataclass
class Option:
    """One lot that can supply one infusion: the bags and what they deliver."""
    lot_number: str
    conditional: bool
    bags: list[dict[str, Any]]
    delivered_cells: float
    cd3_per_kg: float | None
    endotoxin_per_kg: float | None
    volume_ml: float | None = None
    discarded_ml: float | None = None


@dataclass
class Infusion:
    number: int
    planned_at: datetime
    cells_needed: float
    cells_low: float
    cells_high: float
    options: list[Option] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # lot number -> reason
    not_examined: int = 0  # lots left unexamined once enough options were found


@dataclass
class Answer:
    protocol: str
    weight_kg: float
    dose_model: str
    regimen: DosingRegimen
    infusions: list[Infusion]
    plan: list[Option | None]  # one option per infusion, distinct bags, or None
    lots_considered: int

    @property
    def available(self) -> bool:
        return all(p is not None for p in self.plan)


def cells_needed(dose_per_kg: float, weight_kg: float) -> float:
    """Viable cells per infusion: 3 x 10^7 per kg x 70 kg = 2.1 x 10^9."""
    return dose_per_kg * weight_kg


def _limit(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _pick_whole_bags(bags: list[Bag], low: float, high: float, need: float) -> tuple[list[Bag] | None, str]:
    """Whole bags whose viable cells sum within [low, high], the fewest bags closest to the need, soonest
    expiring first among equals; else None and the nearest sums either side."""
    if not bags:
        return None, "no bag left"
    ordered = sorted(bags, key=lambda b: (b.expires_at, b.id))
    best: tuple[Any, ...] | None = None
    below = 0.0
    above = float("inf")
    if len(ordered) <= MAX_EXACT_BAGS:
        values = [b.viable_cells for b in ordered]
        ascending, descending = sorted(values), sorted(values, reverse=True)
        for k in range(1, len(ordered) + 1):
            smallest, largest = sum(ascending[:k]), sum(descending[:k])
            if smallest > high:
                above = min(above, smallest)
                break
            if largest < low:  # k bags cannot reach the dose: try more
                below = max(below, largest)
                continue
            for combo in itertools.islice(itertools.combinations(range(len(ordered)), k), MAX_COMBINATIONS):
                total = sum(values[i] for i in combo)
                if low <= total <= high:
                    key = (k, abs(total - need), combo)
                    if best is None or key < best:
                        best = key
                elif total < low:
                    below = max(below, total)
                else:
                    above = min(above, total)
            if best is not None:
                break
        if best is not None:
            return [ordered[i] for i in best[2]], ""
        below = max(below, sum(values)) if sum(values) < low else below
    else:
        chosen: list[Bag] = []
        total = 0.0
        for bag in ordered:
            if total + bag.viable_cells <= high:
                chosen.append(bag)
                total += bag.viable_cells
            if total >= low:
                return chosen, ""
        below = total
    parts = []
    if below:
        parts.append(f"{cells(below)} below")
    if above != float("inf"):
        parts.append(f"{cells(above)} above")
    nearest = f" (nearest whole bags: {' and '.join(parts)})" if parts else ""
    return None, nearest


def _option_for(lot: Lot, bags: list[Bag], inf: Infusion, weight: float, model: str,
                regimen: DosingRegimen, exact: bool = False) -> tuple[Option | None, str]:
    if model == "whole_bags" and exact:
        total = sum(b.viable_cells for b in bags)
        if not inf.cells_low <= total <= inf.cells_high:
            return None, (f"the {len(bags)} chosen bag(s) hold {cells(total)} viable cells, outside "
                          f"-{num(regimen.tolerance_minus_pct)}% / +{num(regimen.tolerance_plus_pct)}% of "
                          f"{cells(inf.cells_needed)} needed for {num(weight)} kg ({cells(inf.cells_low)} to "
                          f"{cells(inf.cells_high)})")
    if model == "whole_bags":
        chosen, nearest = (bags, "") if exact else _pick_whole_bags(bags, inf.cells_low, inf.cells_high,
                                                                     inf.cells_needed)
        if chosen is None:
            available = sum(b.viable_cells for b in bags)
            if available < inf.cells_low:
                return None, (f"not enough cells for infusion {inf.number}: {cells(available)} viable cells in "
                              f"{len(bags)} usable bag(s) vs {cells(inf.cells_needed)} needed")
            return None, (f"no number of whole bags falls within -{num(regimen.tolerance_minus_pct)}% / "
                          f"+{num(regimen.tolerance_plus_pct)}% of {cells(inf.cells_needed)} for "
                          f"{num(weight)} kg{nearest}")
        delivered = sum(b.viable_cells for b in chosen)
        bag_rows = [{"id": b.id, "product_identifier": b.product_identifier, "viable_cells": b.viable_cells,
                     "whole": True, "expires_at": b.expires_at} for b in chosen]
        volume = discarded = None
    else:
        available = sum(b.viable_cells for b in bags)
        if available < inf.cells_needed:
            return None, (f"not enough cells for infusion {inf.number}: {cells(available)} viable cells in "
                          f"{len(bags)} usable bag(s) vs {cells(inf.cells_needed)} needed")
        if any(not b.volume_ml for b in bags):
            return None, "bag volume not recorded: a volume cannot be drawn"
        remaining = inf.cells_needed
        bag_rows = []
        volume = discarded = 0.0
        for bag in sorted(bags, key=lambda b: (b.expires_at, b.id)):
            if remaining <= 0:
                break
            take = min(bag.viable_cells, remaining)
            ml = bag.volume_ml * take / bag.viable_cells if bag.viable_cells else 0.0
            bag_rows.append({"id": bag.id, "product_identifier": bag.product_identifier,
                             "viable_cells": take, "whole": take >= bag.viable_cells, "draw_ml": ml,
                             "discard_ml": bag.volume_ml - ml, "expires_at": bag.expires_at})
            volume += ml
            discarded += bag.volume_ml - ml
            remaining -= take
        if exact and len(bag_rows) < len(bags):
            spare = ", ".join(b.product_identifier for b in bags if b.id not in {r["id"] for r in bag_rows})
            return None, (f"the dose of {cells(inf.cells_needed)} for {num(weight)} kg is drawn without "
                          f"{spare}: choose only the bags the dose is drawn from")
        delivered = inf.cells_needed
    cd3 = eu = None
    if lot.total_viable > 0 and lot.cd3_total is not None:
        cd3 = lot.cd3_total * delivered / lot.total_viable / weight
    if lot.total_viable > 0 and lot.endotoxin_total is not None:
        eu = lot.endotoxin_total * delivered / lot.total_viable / weight
    cd3_limit = _limit(regimen.max_cd3_per_kg, lot.cd3_limit_per_kg)
    eu_limit = _limit(regimen.max_endotoxin_eu_per_kg, lot.endotoxin_limit_per_kg)
    if cd3_limit is not None:
        if cd3 is None:
            return None, "no residual CD3+ result for the lot"
        if cd3 > cd3_limit:
            return None, (f"CD3+ per kg too high for this weight: {cells(cd3)} vs limit {cells(cd3_limit)} "
                          f"cells/kg ({cells(delivered)} viable cells delivered to {num(weight)} kg)")
    if eu_limit is not None:
        if eu is None:
            return None, "no endotoxin result for the lot"
        if eu > eu_limit:
            return None, (f"endotoxin per kg too high for this weight: {num(eu)} vs limit {num(eu_limit)} "
                          f"EU/kg ({cells(delivered)} viable cells delivered to {num(weight)} kg)")
    return Option(lot.lot_number, lot.conditional, bag_rows, delivered, cd3, eu, volume, discarded), ""


def _lot_reason_at(lot: Lot, inf: Infusion, regimen: DosingRegimen) -> str:
    if lot.status in LOT_STATUS_REASON:
        return LOT_STATUS_REASON[lot.status]
    if regimen.ligand_window_hours:
        if lot.engineering_end is None:
            return "end of MPB-sia1 engineering not recorded: the ligand window cannot be checked"
        hours = (inf.planned_at - lot.engineering_end).total_seconds() / 3600
        if hours > regimen.ligand_window_hours:
            return (f"outside the ligand window at infusion {inf.number}: {num(hours)} h after the end of "
                    f"MPB-sia1 engineering vs at most {num(regimen.ligand_window_hours)} h")
    return ""


def infusion_target(regimen: DosingRegimen, weight_kg: float, dose_model: str, number: int,
                    planned_at: datetime) -> Infusion:
    """One infusion's need: dose x weight, and the range the delivered cells must fall in."""
    need = cells_needed(regimen.dose_per_kg, weight_kg)
    low = need * (1 - regimen.tolerance_minus_pct / 100)
    high = need * (1 + regimen.tolerance_plus_pct / 100)
    if dose_model == "drawn_volume":
        low = high = need
    return Infusion(number, planned_at, need, low, high)


def check_lot_for_infusion(lot: Lot, inf: Infusion, weight_kg: float, dose_model: str, regimen: DosingRegimen,
                           *, exact: bool = False) -> tuple[Option | None, str]:
    """Whether the lot's usable bags can supply the infusion (lot status, ligand window, expiry at the
    planned time, dose within tolerance, CD3+ and endotoxin per kg delivered): the option, or the reason.
    exact=True: the bags are the ones chosen for the infusion and the dose must use every one of them."""
    reason = _lot_reason_at(lot, inf, regimen)
    if reason:
        return None, reason
    fresh = [b for b in lot.bags if b.expires_at > inf.planned_at]
    if not fresh:
        if lot.bags:
            return None, (f"expires before infusion {inf.number}: last bag expires "
                          f"{max(b.expires_at for b in lot.bags):%Y-%m-%d %H:%M} UTC, "
                          f"infusion {inf.planned_at:%Y-%m-%d %H:%M} UTC")
        if lot.held_bags:
            return None, f"reserved: all {lot.held_bags} usable bag(s) are reserved"
        return None, "no usable bag left"
    if exact and len(fresh) < len(lot.bags):
        late = ", ".join(b.product_identifier for b in lot.bags if b.expires_at <= inf.planned_at)
        return None, f"expires before infusion {inf.number}: {late}"
    option, why = _option_for(lot, fresh, inf, weight_kg, dose_model, regimen, exact=exact)
    if option is None:
        expired = len(lot.bags) - len(fresh)
        if expired and "not enough" in why:
            why += f"; {expired} bag(s) expire before infusion {inf.number}"
        if lot.held_bags and "not enough" in why:
            why += f"; {lot.held_bags} bag(s) reserved"
        return None, why
    return option, ""


def plan_availability(lots: Iterable[Lot], *, regimen: DosingRegimen, weight_kg: float, first_at: datetime,
                      dose_model: str, max_options: int | None = None,
                      load_bags: Callable[[list[Lot]], None] | None = None,
                      skip_infusions: Iterable[int] = ()) -> Answer:
    """Per infusion, every lot that can supply it (whole lots only) and the reason for every lot that
    cannot; then one plan giving each infusion its own bags, lots tried soonest-expiring first."""
    if dose_model not in DOSE_MODELS:
        raise ValidationFailed(f"Unknown dose model {dose_model!r}; the site setting is one of {', '.join(DOSE_MODELS)}.")
    lots = list(lots)
    infusions = [infusion_target(regimen, weight_kg, dose_model, i + 1,
                                 first_at + timedelta(days=regimen.interval_days * i))
                 for i in range(regimen.infusions)]
    used: set[int] = set()
    plan: list[Option | None] = []
    skip = set(skip_infusions)
    for inf in infusions:
        if inf.number in skip:  # already covered (a live reservation): nothing proposed, no bag set aside
            plan.append(None)
            continue
        chosen_for_plan: Option | None = None
        for position, lot in enumerate(lots):
            if max_options is not None and len(inf.options) >= max_options and chosen_for_plan is not None:
                inf.not_examined = len(lots) - position
                break
            if lot.bags is None and load_bags is not None and lot.status not in LOT_STATUS_REASON:
                load_bags([x for x in lots[position:position + BAG_CHUNK] if x.bags is None])
            option, why = check_lot_for_infusion(lot, inf, weight_kg, dose_model, regimen)
            if option is None:
                inf.refused[lot.lot_number] = why
                continue
            inf.options.append(option)
            if chosen_for_plan is None:
                free = [b for b in lot.bags if b.expires_at > inf.planned_at and b.id not in used]
                planned, _ = _option_for(lot, free, inf, weight_kg, dose_model, regimen) if free else (None, "")
                if planned is not None:
                    chosen_for_plan = planned
                    used.update(b["id"] for b in planned.bags)
        plan.append(chosen_for_plan)
    return Answer(regimen.protocol, weight_kg, dose_model, regimen, infusions, plan, len(lots))


# --- loading from the database --------------------------------------------------------------------

def _held_unit_ids(sess: Session) -> set[int]:
    try:
        from batches.dosing.reservations import held_unit_ids
    except ImportError:
        return set()
    return set(held_unit_ids(sess))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        from datetime import timezone

        value = value.replace(tzinfo=timezone.utc)
    return value


def load_lots(sess: Session, protocol: str, *, not_expired_at: datetime,
              held_unit_ids: set[int] | None = None, lazy: bool = False,
              lot_numbers: Iterable[str] | None = None) -> tuple[list[Lot], Callable[[list[Lot]], None]]:
    """The protocol's lots, released ones first and oldest first, and a loader giving each its viable
    total and its CD3+ and endotoxin totals, and a loader of their usable bags (issuable, unvoided, not
    expired at the first infusion, not held by a reservation) with their totals. lazy=False loads every lot now."""
    import json

    from batches.execution.models import StepEntry

    held = _held_unit_ids(sess) if held_unit_ids is None else held_unit_ids
    fpu = FinalProductUnit
    lots: dict[int, Lot] = {}
    lot_of_batch: dict[int, Lot] = {}
    batch_of_lot: dict[str, int] = {}
    lot_id_of: dict[str, int] = {}
    per_kg_of: dict[str, str | None] = {}
    lot_stmt = select(QualityLot.id, QualityLot.batch_id, QualityLot.lot_number, QualityLot.status,
                      QualityLot.per_kg_limits).where(QualityLot.product == protocol)
    if lot_numbers is not None:
        lot_stmt = lot_stmt.where(QualityLot.lot_number.in_(list(lot_numbers)))
    for lot_id, batch_id, number, status, per_kg in sess.execute(lot_stmt).all():
        lot = Lot(number, status, bags=None)
        per_kg_of[number] = per_kg
        lots[lot_id] = lot
        lot_of_batch[batch_id] = lot
        batch_of_lot[number] = batch_id
        lot_id_of[number] = lot_id
    if not lots:
        return [], lambda chunk: None
    def load_bags(chunk: list[Lot]) -> None:
        wanted = {batch_of_lot[lot.lot_number]: lot for lot in chunk}
        for lot in chunk:
            lot.bags = []
            raw = per_kg_of.get(lot.lot_number)
            for limit in json.loads(raw) if raw else []:
                if limit.get("test") == "residual_cd3":
                    lot.cd3_limit_per_kg = limit.get("limit")
                elif limit.get("test") == "endotoxin":
                    lot.endotoxin_limit_per_kg = limit.get("limit")
        if not wanted:
            return
        batch_ids = list(wanted)
        for batch_id, total in sess.execute(select(fpu.batch_id, func.sum(fpu.viable_cells))
                                            .where(fpu.batch_id.in_(batch_ids), fpu.voided_at.is_(None))
                                            .group_by(fpu.batch_id)).all():
            wanted[batch_id].total_viable = float(total or 0)
        lot_ids = {lot_id_of[lot.lot_number]: lot for lot in chunk}
        for lot_id, key, value in sess.execute(
                select(QcResult.lot_id, QcResult.test_key, QcResult.value_number)
                .where(QcResult.lot_id.in_(list(lot_ids)), QcResult.test_key.in_(("residual_cd3", "endotoxin")),
                       QcResult.reportable.is_(True), QcResult.status != "invalidated")
                .order_by(QcResult.recorded_at)).all():
            if value is not None:
                if key == "residual_cd3":
                    lot_ids[lot_id].cd3_total = float(value)
                else:
                    lot_ids[lot_id].endotoxin_total = float(value)
        for batch_id, text_value, occurred in sess.execute(
                select(StepEntry.batch_id, StepEntry.value_text, StepEntry.occurred_at)
                .where(StepEntry.batch_id.in_(batch_ids), StepEntry.entry_key == "mpb_removed_at",
                       StepEntry.voided_at.is_(None))).all():
            wanted[batch_id].engineering_end = _parse_time(text_value) or occurred
        # By batch (its index) only; the state of each bag is checked here, so that the planner never
        # prefers a scan of every available bag.
        stmt = (select(fpu.id, fpu.batch_id, fpu.product_identifier, fpu.viable_cells, fpu.volume_ml,
                       fpu.expires_at, fpu.status, fpu.voided_at).where(fpu.batch_id.in_(batch_ids)))
        for row in sess.execute(stmt).all():
            lot = wanted.get(row.batch_id)
            if (lot is None or row.voided_at is not None or row.status not in ISSUABLE_UNIT_STATUSES
                    or row.expires_at <= not_expired_at):
                continue
            if row.id in held:
                lot.held_bags += 1
                continue
            lot.bags.append(Bag(row.id, row.product_identifier, float(row.viable_cells), row.volume_ml,
                                row.expires_at, row.status))

    # Released lots first, oldest lot number (first made, first to expire) first.
    ordered = sorted(lots.values(), key=lambda lot: (
        lot.status not in ("released", "conditionally_released"), lot.lot_number))
    if not lazy:
        load_bags([lot for lot in ordered if lot.status in ("released", "conditionally_released")])
        for lot in ordered:
            if lot.bags is None:
                lot.bags = []
    return ordered, load_bags


def availability(sess: Session, *, weight_kg: float, protocol: str, first_infusion_at: datetime | None = None,
                 dose_model: str | None = None, held_unit_ids: set[int] | None = None,
                 regimen: DosingRegimen | None = None, max_options: int | None = MAX_OPTIONS,
                 skip_infusions: Iterable[int] = ()) -> Answer:
    """Which lots and bags can supply each infusion of the protocol's approved regimen for this weight
    (at most max_options lots listed per infusion, soonest-expiring first; None lists every one)."""
    from batches.dosing.operations import checked_weight, current_regimen, dose_model as site_dose_model

    if protocol not in PROTOCOLS:
        raise ValidationFailed(f"Protocol must be one of {', '.join(PROTOCOLS)}.")
    weight = checked_weight(weight_kg)
    regimen = regimen or current_regimen(sess, protocol)
    if regimen is None:
        raise ValidationFailed(f"No approved dosing regimen for {protocol}: QA must approve one first.")
    first = first_infusion_at or utcnow()
    lots, load_bags = load_lots(sess, protocol, not_expired_at=first, held_unit_ids=held_unit_ids, lazy=True)
    return plan_availability(lots, regimen=regimen, weight_kg=weight, first_at=first,
                             dose_model=dose_model or site_dose_model(), max_options=max_options,
                             load_bags=load_bags, skip_infusions=skip_infusions)


def availability_for_patient(sess: Session, patient: Any, *, first_infusion_at: datetime | None = None,
                             **kwargs: Any) -> Answer:
    """Availability for a patient: the weight closest to (and not too long before) the first infusion."""
    from batches.dosing.operations import weight_for_infusion

    first = first_infusion_at or utcnow()
    weight = weight_for_infusion(sess, patient, first)
    return availability(sess, weight_kg=weight.weight_kg, protocol=patient.protocol, first_infusion_at=first,
                        **kwargs)


def check_chosen_bags(sess: Session, *, regimen: DosingRegimen, weight_kg: float, protocol: str, lot_number: str,
                      unit_ids: Iterable[int], infusion_number: int, planned_at: datetime,
                      dose_model: str | None = None) -> Option:
    """The bags chosen (one lot) for one infusion, checked by the rules of the availability answer at the
    planned time: the option they make, or ValidationFailed with the reason and its figures."""
    from batches.dosing.operations import dose_model as site_dose_model

    model = dose_model or site_dose_model()
    if model not in DOSE_MODELS:
        raise ValidationFailed(f"Unknown dose model {model!r}; the site setting is one of {', '.join(DOSE_MODELS)}.")
    if infusion_number > regimen.infusions:
        raise ValidationFailed(f"The {regimen.protocol} regimen has {regimen.infusions} infusion(s): there is no "
                               f"infusion {infusion_number}.", errors={"infusion_number": ["Not in the regimen."]})
    wanted = set(unit_ids)
    lots, _ = load_lots(sess, protocol, not_expired_at=planned_at, held_unit_ids=set(), lot_numbers=[lot_number])
    lot = next((x for x in lots if x.lot_number == lot_number), None)
    if lot is None:
        raise ValidationFailed(f"Lot {lot_number} is not a {protocol} lot: choose bags of the patient's protocol.",
                               errors={"unit_ids": ["Wrong protocol."]})
    usable = [b for b in lot.bags or [] if b.id in wanted]
    if len(usable) < len(wanted) and lot.status not in LOT_STATUS_REASON:
        raise ValidationFailed(f"Not reserved: {len(wanted) - len(usable)} chosen bag(s) of lot {lot_number} cannot "
                               f"be infused at {planned_at:%Y-%m-%d %H:%M} UTC (expired, voided or not issuable).",
                               errors={"unit_ids": ["Bag not usable."]})
    lot.bags = usable
    lot.held_bags = 0
    inf = infusion_target(regimen, weight_kg, model, infusion_number, planned_at)
    option, why = check_lot_for_infusion(lot, inf, weight_kg, model, regimen, exact=True)
    if option is None:
        raise ValidationFailed(f"Not reserved: lot {lot_number} for infusion {infusion_number} of {num(weight_kg)} kg "
                               f"({model.replace('_', ' ')}): {why}.", errors={"unit_ids": [why]})
    return option
