"""The JIT PAM document's text, composed from :class:`~.gather.PamFacts`: every statement is one the facts support.

A claim that ``evidence`` checks (no standing privilege, every request approved by people,
every checkout under dual control) is written only when the period's records bear it out;
otherwise the section says what the records show instead.
"""
from jitad.humantime import minutes_text

from .blocks import Bullets, Heading, Para, table
from .gather import PamFacts

GAPS_SHOWN = 50


def _at(value) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _scope(f: PamFacts) -> list:
    tiers: dict[str, int] = {}
    for t in f.targets:
        tiers[t["tier_label"]] = tiers.get(t["tier_label"], 0) + 1
    counts = "; ".join(f"{label}: {n}" for label, n in sorted(tiers.items())) or "none configured"
    rows = [(t["name"], t["kind"], f"T{t['tier']}", t["hostname"] or "-", _yes(t["host_checked"]),
             ", ".join(t["policies"]) or "-", _yes(t["enabled"])) for t in f.targets]
    return [Heading(2, "1. Scope"),
            Para(f"jitad governs privileged access to {len(f.targets)} targets, by tier ({counts}). The right on each "
                 "target is conferred by membership of one Active Directory group that jitad alone manages."),
            table(("Target", "Kind", "Tier", "Host", "Checked on the server", "Policies", "Enabled"), rows)]


def _jit_model(f: PamFacts) -> list:
    out = [Heading(2, "2. Just-in-time model"),
           Para("Privileged access is granted just-in-time and is time-bound: nobody is a permanent member of a managed "
                "admin group. A person asks for one target for a bounded time; jitad adds them to the target's group "
                "when the request is approved and removes them when the grant ends, verifying the removal by reading "
                "Active Directory back. A reconciler removes any member no live grant explains, and the servers are "
                "scanned for local administrators outside the model.")]
    scanned, last = f.scans["servers_scanned"], f.scans["last_scan_at"]
    if not scanned:
        out.append(Para("No server has been scanned for standing admins yet, so this document makes no statement "
                        "about standing admins on the servers."))
    elif not f.standing:
        out.append(Para(f"No standing privilege: the standing-admin scans found no standing admins during the period "
                        f"({scanned} servers scanned, the latest scan at {_at(last)})."))
    else:
        out.append(Para(f"Standing admins found by the scans during the period: {len(f.standing)} ({scanned} servers "
                        f"scanned, the latest scan at {_at(last)}). Each is an exception to the just-in-time model "
                        "until it is removed:"))
        out.append(table(("Finding", "Server", "Account", "First seen", "Resolved", "Scan"),
                         [(f"#{s['id']}", s["target"], s["name"], _at(s["first_seen_at"]), _at(s["resolved_at"]),
                           f"#{s['scan']}" if s["scan"] else "-") for s in f.standing]))
    return out


def _stage_text(stage: dict) -> str:
    groups = ", ".join(stage["approver_groups"]) or "the target's approver groups"
    text = f"{stage['approvals_required']} approval(s) from {groups}" + (" (distinct groups)" if stage["distinct_groups"] else "")
    escalation, timeout = stage.get("escalation"), stage.get("timeout")
    if escalation:
        told = ", ".join([*escalation.get("groups", []), *escalation.get("notify", [])])
        text += f"; after {minutes_text(escalation['after_minutes'])} undecided, escalates to {told}"
        if escalation.get("add_as_approvers"):
            text += " (who may then decide)"
    if timeout:
        verb = "denied" if timeout["action"] == "deny" else "approved without a decision"
        text += f"; {verb} after {minutes_text(timeout['after_minutes'])} undecided"
    return text


def _approval_cell(p: dict) -> str:
    if p["auto"]:
        return "automatic"
    stages = p.get("stages") or []
    if len(stages) == 1:
        return f"{_stage_text(stages[0])}"
    if stages:
        return "; then ".join(f"stage {i} ({s['name']}): {_stage_text(s)}" for i, s in enumerate(stages, 1))
    groups = ", ".join(p["approver_groups"]) or "the target's approver groups"
    return f"{p['approvals_required']} approval(s) from {groups}"


def _workflow_paras(policies: list[dict]) -> list:
    """What each enabled policy adds to its approvers: time windows, networks, scheduled starts, reviews."""
    out = []
    for p in policies:
        if not p["enabled"]:
            continue
        rules = []
        if p.get("windows"):
            rules.append(f"time windows {p['windows']}")
        if p.get("networks"):
            rules.append(f"requests only from {', '.join(p['networks'])}")
        if p.get("schedule_max_lead_minutes"):
            rules.append(f"scheduled starts up to {minutes_text(p['schedule_max_lead_minutes'])} ahead")
        if p.get("review"):
            r = p["review"]
            rules.append(f"eligibility reviewed every {minutes_text(r['every_minutes'])} by {', '.join(r['reviewers'])} "
                         f"(undecided by the deadline: {r['default']})")
        if rules:
            out.append(Para(f"Policy {p['name']}: " + "; ".join(rules) + "."))
    return out


def _authorization(f: PamFacts) -> list:
    out = [Heading(2, "3. Authorization flow"),
           Para("A request is made on the portal or the REST API. The policy that makes the person eligible (the lowest "
                "priority number wins) sets the duration of a grant, extensions included, and who must approve. "
                "Approvers decide in the admin, in the API or from a notification; nobody decides their own request; "
                "N-of-M approvals come from N distinct people and, where a policy asks for distinct groups, from N "
                "different approver groups. Requests nobody decides in time expire.")]
    enabled = [p for p in f.policies if p["enabled"]]
    if enabled:
        top = max(enabled, key=lambda p: p["max_minutes"])
        stated = max(top["max_minutes"], f.approval.get("longest_approved_minutes") or 0)
        out.append(Para(f"Every grant is time-bound: no grant lasts longer than {stated} minutes "
                        f"({minutes_text(stated)}), extensions included (the longest policy is {top['name']})."))
    auto, approved, auto_count = f.approval["auto_policies"], f.approval["approved"], f.approval["auto_approved"]
    if enabled and not auto and not auto_count:
        least = min(p["approvals_required"] for p in enabled)
        out.append(Para(f"Every request requires approval by at least {least} approver(s) before access is granted; "
                        "no request is approved automatically."))
    elif auto or auto_count:
        why = {p["name"]: "; ".join(p.get("auto_reasons") or []) for p in f.policies}
        named = ", ".join(f"{name} ({why[name]})" if why.get(name) else name for name in auto)
        out.append(Para(f"Automatic approval: policies {named or '(none now)'} can grant access without an "
                        f"approver (a justification is still required). In the period {auto_count} of {approved} "
                        "approved requests were approved automatically; the other policies need approvers as listed."))
    rows = [(p["name"], ", ".join(p["targets"]) or "-", ", ".join(p["eligible"]) or "-",
             f"{p['default_minutes']} min", f"{p['max_minutes']} min ({minutes_text(p['max_minutes'])})",
             _approval_cell(p), _yes(p["distinct_groups"]), p["max_extensions"], f"{p['pending_timeout_minutes']} min",
             f"{_yes(p['justification'])} / {_yes(p['ticket'])}", _yes(p["enabled"])) for p in f.policies]
    out.append(table(("Policy", "Targets", "Eligible", "Default", "Max duration", "Approval", "Distinct groups",
                      "Extensions", "Pending timeout", "Justification / ticket", "Enabled"), rows))
    out += _workflow_paras(f.policies)
    return out


def _session(f: PamFacts) -> list:
    m, r = f.mfa, f.revocation
    out = [Heading(2, "4. Session controls"), Heading(3, "Multi-factor authentication"),
           Para(f"Factors: {'; '.join(m.factors)}. Every portal page needs a login with a verified MFA device."),
           Para(f"MFA is enforced on every privileged session: each privileged step (submitting a request, approving or "
                f"denying, extending, releasing, every break-glass step) needs an MFA verification younger than "
                f"{m.fresh_seconds} seconds ({m.fresh_seconds // 60} minutes), else it asks for a code first, and every "
                "REST API call that changes state carries a current one-time code checked on that call. jitad records "
                "on each request and approval which factor verified it, and when.")]
    if not m.steps:
        out.append(Para("The period holds no privileged step (request, approval or checkout) to confirm this with."))
    elif m.all_verified:
        out.append(Para(f"The records confirm MFA for 100% of privileged sessions in the period: all {m.steps} privileged "
                        "steps (approved requests, approvals, break-glass checkouts and their approvals) carry a verified MFA step within the window."))
    else:
        pct = round(100 * m.steps_verified / m.steps, 1)
        out.append(Para(f"The records of the period show a verified MFA step within the window on {m.steps_verified} of "
                        f"{m.steps} privileged steps ({pct}%). Rows made before jitad recorded the MFA step carry none. "
                        "Steps without one:"))
        gaps = m.gaps[:GAPS_SHOWN] + ([f"... and {len(m.gaps) - GAPS_SHOWN} more"] if len(m.gaps) > GAPS_SHOWN else [])
        out.append(Bullets(tuple(gaps)))
    ttl = {"auto": "Where the forest has the Privileged Access Management feature, memberships are also written with a "
                   "TTL so the domain controllers expire them even if jitad is down (detected automatically).",
           "off": "Memberships are written without a TTL: the sweeper alone removes them."}
    out += [Heading(3, "Automatic revocation"),
            Para(f"Each grant ends on time without anyone acting: a sweeper runs every {r['sweep_interval_seconds']:g} s, "
                 "drives every grant past its end to removal and retries until the removal is verified in Active "
                 f"Directory; a grant still present {r['sla_seconds']:g} s after its end raises an alert. "
                 + ttl.get(str(r["member_ttl"]).lower(), f"Membership TTL setting: {r['member_ttl']}.")
                 + f" {r['host_checked_targets']} targets are also checked on the server over WinRM.")]
    on_time = f.figures.get(("revocation", "on_time_pct"))
    if on_time is not None:
        out.append(Para(f"Measured in the period: {on_time}% of revocations completed on time (KPI revocation)."))
    else:
        out.append(Para("The measured revocation success rate is not available for the period: no grant ended in it."))
    ending = r["end_sessions_policies"]
    out += [Heading(3, "Ending sessions"),
            Para("Group membership already in a logon token survives its removal. "
                 + (f"Policies {', '.join(ending)} end the user's sessions on the server when a grant ends (logoff and "
                    "process stop), so no token keeps the right." if ending else
                    "No policy ends the user's sessions on the server when a grant ends; a token issued during the "
                    "grant keeps the right until the user logs off."))]
    return out


def _breakglass(f: PamFacts) -> list:
    b = f.breakglass
    out = [Heading(2, "5. Break-glass"),
           Para("When the normal path is broken (portal down, DC outage, incident), sealed break-glass accounts take "
                "over: only jitad knows their passwords (encrypted at rest), a checkout normally needs approvals from "
                "other people (dual control), the password is revealed once per checkout with a fresh one-time code, "
                "and check-in rotates it. Accounts that allow emergency mode open at once and alert the security channel."),
           table(("Account", "State", "Approvals required", "Emergency mode", "Longest checkout", "Runbooks"),
                 [(a["name"], a["state"], a["approvals_required"], "allowed" if a["emergency_allowed"] else "no",
                   f"{a['max_checkout_minutes']} min", ", ".join(a["runbooks"]) or "-") for a in b["accounts"]])]
    if not b["accounts"]:
        out.append(Para("No break-glass account is enrolled."))
    emergency = b["emergency_checkouts"]
    if not b["checkouts"]:
        out.append(Para("No break-glass checkout was made in the period."))
    elif b["accounts"] and not emergency and not b["accounts_without_dual_control"]:
        out.append(Para(f"Every checkout in the period was under dual control ({b['checkouts']} checkouts)."))
    else:
        out.append(Para(f"Checkouts in the period: {b['checkouts']}; in emergency mode, without an approval first: "
                        + (", ".join(f"#{c}" for c in emergency) or "none") + "."))
    out += [Heading(3, "Runbooks"),
            table(("Runbook", "Title", "Severity", "Applies to", "Steps"),
                  [(rb["slug"], rb["title"], rb["severity"], ", ".join(rb["applies_to"]), rb["steps"]) for rb in b["runbooks"]])]
    if b["runbook_errors"]:
        out.append(Bullets(tuple(f"{name}: {error}" for name, error in sorted(b["runbook_errors"].items()))))
    out += [Heading(3, "Sealed envelopes"),
            Bullets(tuple(f"{e['account']}: seal {e['seal']}, printed {_at(e['printed_at'])}" for e in b["envelopes"]))
            if b["envelopes"] else Para("No sealed envelope of a current password is printed.")]
    return out


def _audit(f: PamFacts) -> list:
    a = f.audit
    state = "intact" if not a["problem_count"] else f"broken ({a['problem_count']} problems; first: {a['problems'][0]})"
    out = [Heading(2, "6. Audit"),
           Para("Every state change is recorded as an append-only audit event whose hash covers its content and the "
                "previous event's hash, so editing or removing a row is detectable (manage.py jitad_audit_verify). "
                f"The chain holds {a['events']} events and is {state}.")]
    if a["siem"] is None:
        out.append(Para(f"SIEM stream: not available ({a['siem_note']})."))
    elif not a["siem"]:
        out.append(Para("SIEM stream: no destination is configured."))
    else:
        out.append(Para("The audit events stream to the SIEM at least once, in order, with their sequence and hash:"))
        out.append(table(("Destination", "Transport", "Format", "Endpoint", "Last sent", "Head", "Lag (events)",
                          "Last sent at", "Last error"),
                         [(d.get("name"), d.get("transport"), d.get("format"), d.get("endpoint"), d.get("last_seq"),
                           d.get("head_seq"), d.get("lag_events"), _at(d.get("last_sent_at")), d.get("last_error") or "-")
                          for d in a["siem"]]))
    return out


def _kpis(f: PamFacts) -> list:
    out = [Heading(2, "7. Key figures")]
    rows = [(k["section"], k["label"], "-" if k["value"] is None else f"{k['value']}{k['unit']}") for k in f.kpis]
    return out + [Para("Computed from the records of the period, never typed in (Reports pages link each to its rows)."),
                  table(("KPI", "Figure", "Value"), rows)]


def pam_document_blocks(facts: PamFacts) -> list:
    """The whole document as blocks, in reading order."""
    head = [Heading(1, "Just-in-time privileged access: jitad"),
            Para(f"Generated by jitad from live configuration at {_at(facts.generated_at)}, for the period "
                 f"{facts.period.text()}. It follows NIST SP 800-207 (Zero Trust Architecture): access to each resource "
                 "is granted per session, just in time and on policy, after strong authentication, and every decision "
                 "is recorded.")]
    tail = [Heading(2, "8. Checking this document"),
            Para("manage.py jitad_pam_validate checks it as text; with --evidence it holds its statements against "
                 "jitad's records for a period and names the record that disproves any of them.")]
    return (head + _scope(facts) + _jit_model(facts) + _authorization(facts) + _session(facts) + _breakglass(facts)
            + _audit(facts) + _kpis(facts) + tail)
