"""The dashboard's Jinja templates (autoescaped), kept in the package as strings."""

# ruff: noqa: E501  (markup reads better unwrapped)

from __future__ import annotations

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<title>{{ title }} · voxline</title>
<style>
 :root { --ink:#111827; --mute:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --accent:#2563eb; }
 * { box-sizing: border-box; }
 body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--ink); background:var(--bg); }
 header { display:flex; gap:20px; align-items:center; padding:12px 24px; background:#111827; color:#fff; }
 header a { color:#d1d5db; text-decoration:none; } header a.on, header a:hover { color:#fff; }
 header .brand { font-weight:700; color:#fff; margin-right:12px; }
 header .tenant { margin-left:auto; color:#9ca3af; }
 main { padding:20px 24px; max-width:1200px; }
 h1 { font-size:20px; margin:0 0 14px; } h2 { font-size:16px; margin:22px 0 8px; }
 table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
 th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
 th { background:#f3f4f6; font-weight:600; font-size:12px; text-transform:uppercase; color:var(--mute); }
 td.num { text-align:right; font-variant-numeric: tabular-nums; }
 a { color:var(--accent); }
 .cards { display:flex; gap:14px; flex-wrap:wrap; margin-bottom:10px; }
 .card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 16px; min-width:150px; }
 .card b { display:block; font-size:22px; } .card span { color:var(--mute); font-size:12px; }
 .charts { display:flex; gap:16px; flex-wrap:wrap; }
 .chart { background:#fff; border:1px solid var(--line); border-radius:8px; }
 .chart .grid { stroke:#eef0f3; } .chart .axis { fill:var(--mute); font-size:11px; }
 .chart .chart-title { font-weight:600; font-size:13px; fill:var(--ink); } .chart .legend { font-size:11px; fill:var(--ink); }
 .turn { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px; margin:8px 0; max-width:820px; }
 .turn.user { border-left:4px solid #9ca3af; } .turn.assistant { border-left:4px solid var(--accent); }
 .who { font-size:11px; text-transform:uppercase; color:var(--mute); font-weight:600; }
 .meta { color:var(--mute); font-size:12px; margin-top:4px; }
 .said { color:var(--mute); text-decoration:line-through; }
 .tool { font-family:ui-monospace, monospace; font-size:12px; background:#f3f4f6; padding:4px 8px; border-radius:4px; margin-top:6px; }
 .pill { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; background:#e5e7eb; }
 .pill.live { background:#dcfce7; color:#166534; } .pill.active { background:#dbeafe; color:#1e40af; }
 form.inline { display:inline; } input, select, button { font:inherit; padding:6px 8px; }
 .login { max-width:420px; margin:80px auto; background:#fff; border:1px solid var(--line); border-radius:8px; padding:24px; }
 .login input { width:100%; margin:8px 0 12px; } .error { color:#b91c1c; }
 audio { width:100%; max-width:820px; margin:6px 0 12px; }
 pre { background:#fff; border:1px solid var(--line); padding:10px; overflow:auto; max-width:820px; }
</style></head><body>
{% if nav %}<header><span class="brand">voxline</span>
 {% for href, label in nav %}<a href="{{ href }}" class="{{ 'on' if label == active else '' }}">{{ label }}</a>{% endfor %}
 <span class="tenant">tenant <b>{{ tenant }}</b></span>
 <form class="inline" method="post" action="/dashboard/logout"><button>Sign out</button></form></header>{% endif %}
<main>{% block body %}{% endblock %}</main></body></html>"""

LOGIN = """{% extends "base" %}{% block body %}<div class="login"><h1>voxline dashboard</h1>
<form method="post" action="/dashboard/login"><label>API key<input type="password" name="key" autocomplete="off" autofocus></label>
{% if tenant_field %}<label>Tenant (platform admin)<input name="tenant"></label>{% endif %}
<button type="submit">Sign in</button></form>{% if error %}<p class="error">{{ error }}</p>{% endif %}</div>{% endblock %}"""

OVERVIEW = """{% extends "base" %}{% block body %}<h1>Overview</h1>
<div class="cards">
 <div class="card"><b>{{ live|length }}</b><span>calls in progress</span></div>
 <div class="card"><b>{{ totals.calls }}</b><span>calls, last {{ days|length }} days</span></div>
 <div class="card"><b>{{ '%.1f'|format(totals.minutes) }}</b><span>minutes</span></div>
 <div class="card"><b>${{ '%.4f'|format(totals.cost) }}</b><span>cost</span></div>
</div>
<div class="charts">{{ latency_chart|safe }}{{ cost_chart|safe }}</div>
<h2>Latest calls</h2>{% with calls=recent %}{% include "call_rows" %}{% endwith %}{% endblock %}"""

CALL_ROWS = """<table><tr><th>Started</th><th>Agent</th><th>Channel</th><th>Status</th><th>Outcome</th>
<th class="num">Duration</th><th class="num">Cost</th></tr>
{% for c in calls %}<tr><td><a href="/dashboard/calls/{{ c.id }}{{ q }}">{{ c.started_at[:19]|replace('T', ' ') }}</a></td>
<td>{{ c.agent }}</td><td>{{ c.channel }} {{ c.direction }}</td>
<td><span class="pill {{ 'live' if not c.ended_at else '' }}">{{ c.status }}</span></td><td>{{ c.end_reason or '' }}</td>
<td class="num">{{ '%.1f s'|format(c.duration_secs) if c.duration_secs is not none else '' }}</td>
<td class="num">{{ '$%.4f'|format(c.cost_usd) if c.cost_usd is not none else '' }}</td></tr>
{% else %}<tr><td colspan="7">No calls.</td></tr>{% endfor %}</table>"""

CALLS = """{% extends "base" %}{% block body %}<h1>Calls</h1>
<form method="get"><input type="hidden" name="tenant" value="{{ tenant }}">
<select name="agent"><option value="">every agent</option>{% for a in agents %}
<option {{ 'selected' if a == agent else '' }}>{{ a }}</option>{% endfor %}</select>
<input name="caller" placeholder="caller" value="{{ caller or '' }}"> <button>Search</button></form><br>
{% include "call_rows" %}{% endblock %}"""

CALL = """{% extends "base" %}{% block body %}<h1>Call {{ call.id }}</h1>
<div class="cards">
 <div class="card"><b>{{ call.agent }}</b><span>agent{% if call.agent_version and call.agent_version.version %} v{{ call.agent_version.version }}{% endif %}</span></div>
 <div class="card"><b>{{ call.status }}</b><span>{{ call.end_reason or '' }}</span></div>
 <div class="card"><b>{{ '%.1f s'|format(call.duration_secs) if call.duration_secs is not none else '-' }}</b><span>duration</span></div>
 <div class="card"><b>{{ '%.0f ms'|format(v2v) if v2v is not none else '-' }}</b><span>voice to voice, p50</span></div>
 <div class="card"><b>${{ '%.4f'|format(call.cost_usd or 0) }}</b><span>cost</span></div>
</div>
{% if recording %}<h2>Recording</h2><audio controls preload="metadata" src="{{ recording }}"></audio>{% endif %}
<h2>Transcript</h2>
{% for t in call.turns %}<div class="turn {{ t.role }}"><div class="who">{{ 'caller' if t.role == 'user' else 'agent' }}</div>
{% if t.role == 'user' %}{{ t.text }}{% else %}{{ t.heard or t.text }}
 {% if t.heard is not none and t.heard != t.text %}<div class="meta">said: <span class="said">{{ t.text }}</span></div>{% endif %}
 {% if t.interrupted %}<span class="pill">interrupted</span>{% endif %}
 {% for tool in t.tool_calls %}<div class="tool">{{ tool.name }}({{ tool.arguments|tojson }}) → {{ tool.error or (tool.result|tojson) }}
 {% if tool.duration_ms %}· {{ '%.0f'|format(tool.duration_ms) }} ms{% endif %}</div>{% endfor %}
 <div class="meta">{% for k, v in (t.latency_ms or {}).items() %}{{ k }} {{ '%.0f'|format(v) }} ms · {% endfor %}
 {% for stage, p in (t.providers or {}).items() %}{{ stage }} {{ p.provider }}/{{ p.model }} · {% endfor %}
 {% if t.cost_usd %}${{ '%.4f'|format(t.cost_usd) }}{% endif %}</div>{% endif %}</div>
{% else %}<p>No transcript (not recorded, or erased).</p>{% endfor %}{% endblock %}"""

AGENTS = """{% extends "base" %}{% block body %}<h1>Agents</h1>
<table><tr><th>Agent</th><th>Source</th><th>Active version</th><th>Versions</th></tr>
{% for a in agents %}<tr><td>{{ a.name }}</td><td>{{ a.source }}</td><td>{{ a.active_version or '-' }}</td>
<td>{% for v in a.versions %}<div><span class="pill {{ 'active' if v.active else '' }}">v{{ v.version }}</span>
 {{ v.created_at[:16]|replace('T', ' ') }} · {{ v.created_by }} · <code>{{ v.spec_sha256[:12] }}</code>{% if v.note %} · {{ v.note }}{% endif %}</div>
{% else %}folder{% endfor %}</td></tr>{% else %}<tr><td colspan="4">No agents.</td></tr>{% endfor %}</table>{% endblock %}"""

LIVE = """{% extends "base" %}{% block body %}<h1>Live calls</h1><p class="meta">Refreshes every 5 s.</p>
{% include "call_rows" %}{% endblock %}"""

TENANTS = """{% extends "base" %}{% block body %}<h1>Tenants</h1><ul>
{% for t in tenants %}<li><a href="/dashboard?tenant={{ t.id }}">{{ t.id }}</a> {{ t.name or '' }}</li>{% endfor %}</ul>{% endblock %}"""

TEMPLATES = {"base": BASE, "login": LOGIN, "overview": OVERVIEW, "call_rows": CALL_ROWS, "calls": CALLS,
             "call": CALL, "agents": AGENTS, "live": LIVE, "tenants": TENANTS}
