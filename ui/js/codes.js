// codes.js: what the server says with a stable code, said in the dashboard's language. A
// message's status_reason (`code: English`), an audit row's event and detail, an API
// error's data.<field>.code and a health note each become text from strings/en.js or
// strings/ar.js, with their parameters filled in (times in the clinic's zone, ids, counts).
// An unknown code gets a generic text and the code itself, so the server's English never
// reaches an Arabic screen; the English is kept in a title for whoever supports the clinic.
import { h } from './dom.js';
import { t, tOr, getLang, fmtNumber, fmtDateTime, fmtSeconds, zonedToDate } from './i18n.js';

/** an id, a phone number or a provider's reference: left to right, never translated */
export function ltr(text, cls = 'id') {
	return h('bdi', { dir: 'ltr', class: cls, translate: 'no' }, String(text));
}

/** a machine code (template code, vendor error code, variable name) as shown in monospace */
export function codeNode(text) {
	return h('code', { dir: 'ltr', translate: 'no' }, String(text));
}

/**
 * tNodes is t() whose {placeholders} may be elements (an id in <bdi>, a code): the
 * string is split around them, so a translation can put them anywhere.
 */
export function tNodes(key, vars = {}) {
	const s = t(key);
	const out = [];
	let last = 0;
	for (const m of s.matchAll(/\{(\w+)\}/g)) {
		if (!(m[1] in vars)) continue;
		out.push(s.slice(last, m.index));
		const v = vars[m[1]];
		out.push(v instanceof Node ? v : String(v ?? ''));
		last = m.index + m[0].length;
	}
	out.push(s.slice(last));
	return out.filter((x) => x !== '');
}

// Reasons written before they all had a code, and sentences some paths still write
// without one: the code they mean, and their parameters.
const LEGACY = [
	[/^campaign canceled$/, () => ['campaign_canceled', {}]],
	[/^reported (\w+) by (\S+)$/, (m) => [`reported_${m[1]}`, { provider: m[2] }]],
	[/^send_at reached$/, () => ['send_at_reached', {}]],
];

// The parameters each code's English text carries, read from that text.
const PARAMS = {
	channel_disabled: (s) => ({ channel: /turned off (\w+)/.exec(s)?.[1] }),
	category_disabled: (s) => ({ category: /turned off (\w+) messages/.exec(s)?.[1] }),
	duplicate: (s) => {
		const m = /message (\S+) sent the same to this patient (?:(in the same request)|(\S+) ago)/.exec(s);
		return m ? { id: m[1], same: !!m[2], ago: goDuration(m[3]) } : {};
	},
	quiet_hours: (s) => {
		const m = /until (\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})/.exec(s);
		return m ? { until: zonedToDate(m[1], m[2]) } : {};
	},
	reported_failed: (s) => ({ provider: /by (\S+)\s*$/.exec(s)?.[1] }),
	reported_undelivered: (s) => ({ provider: /by (\S+)\s*$/.exec(s)?.[1] }),
	no_provider: (s) => ({ channel: /channel (\w+)/.exec(s)?.[1] }),
};

/** "1m5s", "37s", "2h0m0s" (Go's time.Duration) in seconds; null when it is not one */
function goDuration(s) {
	const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(s || '');
	if (!m || !s) return null;
	return (+(m[1] || 0)) * 3600 + (+(m[2] || 0)) * 60 + (+(m[3] || 0));
}

/** a status_reason (or an audit detail's reason) as {code, params, raw}; null for "" */
export function parseReason(raw) {
	if (raw == null || raw === '') return null;
	const s = String(raw).trim();
	for (const [re, f] of LEGACY) {
		const m = re.exec(s);
		if (m) {
			const [code, params] = f(m);
			return { code, params, raw: s };
		}
	}
	const m = /^([a-z][a-z0-9_]*)(?::\s*(.*))?$/s.exec(s);
	if (!m) return { code: '', params: {}, raw: s };
	const code = m[1];
	return { code, params: PARAMS[code]?.(m[2] || '') || {}, raw: s };
}

/** a reason's text as elements, in the page's language */
export function reasonNodes(raw) {
	const r = parseReason(raw);
	if (!r) return [];
	const p = r.params;
	switch (r.code) {
		case 'channel_disabled':
			if (p.channel) return tNodes('reason.channel_disabled_named', { channel: tOr(`channel.${p.channel}`, p.channel) });
			break;
		case 'category_disabled':
			if (p.category) return tNodes('reason.category_disabled_named', { category: tOr(`category.${p.category}`, p.category) });
			break;
		case 'duplicate':
			if (p.id && p.same) return tNodes('reason.duplicate_batch', { id: ltr(p.id) });
			if (p.id && p.ago != null) return tNodes('reason.duplicate_ago', { id: ltr(p.id), ago: fmtSeconds(p.ago) });
			break;
		case 'quiet_hours':
			if (p.until) return tNodes('reason.quiet_hours_until', { time: fmtDateTime(p.until) });
			break;
		case 'reported_failed':
		case 'reported_undelivered':
			if (p.provider) return tNodes(`reason.${r.code}_by`, { provider: ltr(p.provider, 'provider') });
			break;
		case 'no_provider':
			if (p.channel) return tNodes('reason.no_provider_named', { channel: tOr(`channel.${p.channel}`, p.channel) });
			break;
		default:
	}
	const known = r.code && tOr(`reason.${r.code}`, null);
	if (known) return [known];
	return r.code ? tNodes('reason.unknown_code', { code: codeNode(r.code) }) : [t('reason.unknown')];
}

/** a reason as one line of text (a toast, a test) */
export function reasonText(raw) {
	return h('span', {}, reasonNodes(raw)).textContent;
}

/** a reason as an inline element; the server's own words stay in its title */
export function reasonEl(raw, props = {}) {
	const r = parseReason(raw);
	return h('span', { ...props, title: raw || null, dataset: { code: r?.code || '' } }, reasonNodes(raw));
}

// The parts of a campaign check's invalid recipient that older servers give as English.
const RECIPIENT_REASONS = [
	[/^not a mobile number$/, 'validation_not_mobile'],
	[/^not a valid phone number$/, 'validation_invalid_phone'],
	[/^not a valid email address$/, 'validation_invalid_email'],
];

/**
 * an API error's field entry ({code, message}) in the page's language: the code's text
 * when known; in English otherwise the server's message, in Arabic a generic text and the
 * code.
 */
export function apiCodeText(v) {
	if (v == null) return t('error.invalid');
	if (typeof v === 'string') {
		const code = RECIPIENT_REASONS.find(([re]) => re.test(v))?.[1];
		if (code) return t(`code.${code}`, { name: '' });
		return getLang() === 'en' ? v : t('error.invalid');
	}
	const msg = v.message || '';
	const code = v.code || '';
	const tr = code ? tOr(`code.${code}`, null) : null;
	if (tr) {
		const name = /needs missing variable "([^"]+)"/.exec(msg)?.[1] || /"([^"]+)"\s*$/.exec(msg)?.[1] || '';
		return tr.replace('{name}', name);
	}
	if (getLang() === 'en' && msg) return msg;
	return code ? t('error.invalid_code', { code }) : t('error.invalid');
}

/** the text of a preview's body problem (error_code when the server gives one) */
export function previewProblem(p) {
	if (p.error_code) return apiCodeText({ code: p.error_code, message: p.error });
	if (getLang() === 'en') return p.error;
	return t(/subject/i.test(p.error || '') ? 'code.validation_subject_too_long' : 'code.validation_body_too_long');
}

// How each audit detail key is said; a key not listed is shown as its code and value.
const DETAIL = {
	attempt: (v) => tNodes('detail.attempt', { n: fmtNumber(v) }),
	attempts: (v) => tNodes('detail.attempts', { n: fmtNumber(v) }),
	segments: (v) => tNodes('detail.segments', { n: fmtNumber(v) }),
	channel: (v) => [tOr(`channel.${v}`, v)],
	template: (v) => tNodes('detail.template', { code: codeNode(v) }),
	user: (v) => tNodes('detail.user', { id: ltr(v) }),
	reason: (v) => reasonNodes(v),
	previous_reason: (v) => tNodes('detail.previous_reason', { reason: h('span', {}, reasonNodes(v)) }),
	class: (v) => [tOr(`class.${v}`, null) ?? t('detail.class_other')],
	reconciled: (v) => tNodes('detail.reconciled', { outcome: tOr(`reconciled.${v}`, v) }),
	next_attempt_at: (v) => tNodes('detail.next_attempt_at', { time: fmtDateTime(v) }),
	reconcile_at: (v) => tNodes('detail.reconcile_at', { time: fmtDateTime(v) }),
	provider_message_id: (v) => tNodes('detail.provider_message_id', { id: ltr(v) }),
	source: (v) => [tOr(`source.${v}`, null) ?? t('detail.source_other')],
	previous: (v) => tNodes('detail.previous', { status: tOr(`status.${v}`, v) }),
	provider_status: (v) => tNodes('detail.provider_status', { code: codeNode(v) }),
	stage: (v) => [tOr(`stage.${v}`, null) ?? t('detail.stage_other')],
	campaign: (v) => tNodes('detail.campaign', { id: ltr(v) }),
	intent: (v) => tNodes('detail.intent', { intent: tOr(`intent.${v}`, v) }),
	reply: (v) => tNodes('detail.reply', { id: ltr(v) }),
	error_message: (v) => (getLang() === 'en' ? [String(v)] : null),
};

/**
 * an audit row's detail as elements: each known key said in the page's language, an
 * unknown one as its code and its value when that is a number or a code; English prose
 * (a provider's error message) only on an English screen.
 */
export function detailEl(detail) {
	if (!detail || typeof detail !== 'object') return null;
	const parts = [];
	for (const [k, v] of Object.entries(detail)) {
		if (v == null || v === '' || typeof v === 'object') continue;
		const f = DETAIL[k];
		let nodes;
		if (f) nodes = f(v);
		else if (typeof v === 'number') nodes = [codeNode(k), ' ', fmtNumber(v)];
		else if (typeof v === 'boolean' || /^[\w.:+@-]{1,64}$/.test(String(v))) nodes = [codeNode(k), ' ', ltr(v)];
		else nodes = getLang() === 'en' ? [codeNode(k), ' ', String(v)] : [codeNode(k)];
		if (!nodes) continue;
		parts.push(h('span', { class: 'detail-part', dataset: { key: k } }, nodes));
	}
	if (!parts.length) return null;
	const title = Object.entries(detail).filter(([, v]) => v != null && typeof v !== 'object').map(([k, v]) => `${k}: ${v}`).join(' · ');
	const out = [];
	parts.forEach((p, i) => { if (i) out.push(' · '); out.push(p); });
	return h('span', { class: 'muted small detail', title }, out);
}

// A health answer's note, as the server writes it today: one or more English sentences
// joined by "; ". Each known sentence is a code with its parameters.
const NOTES = [
	[/^check passed/, () => ['check_passed', {}]],
	[/^email is not set up: .*$/, () => ['email_unconfigured', {}]],
	[/^no provider is configured for this channel/, () => ['no_provider', {}]],
	[/^the provider has no health check; status from its recent error rate/, () => ['no_check', {}]],
	[/^the fallback provider (\S+) is (\w+)/, (m) => ['fallback', { provider: m[1], status: m[2] }]],
	[/^(\d+(?:\.\d+)?)% of its messages in the last (\d+) minutes failed on the provider's side/, (m) => ['error_rate', { rate: m[1], minutes: m[2] }]],
	// Last: a failed check's error runs to the next known note or the end.
	[/^check failed: (.*?)(?=; the fallback provider |; \d+(?:\.\d+)?% of its messages |$)/s, (m) => ['check_failed', { error: m[1] }]],
];

/** a health note's codes and parameters: [{code, params}] */
export function parseNotes(detail) {
	const out = [];
	let s = String(detail || '').trim();
	while (s) {
		let hit = null;
		for (const [re, f] of NOTES) {
			const m = re.exec(s);
			if (m) { hit = [m[0].length, ...f(m)]; break; }
		}
		if (!hit) { out.push({ code: '', params: { text: s } }); break; }
		out.push({ code: hit[1], params: hit[2] });
		s = s.slice(hit[0]).replace(/^;\s*/, '');
	}
	return out;
}

/** a channel's health notes (ch.notes [{code, ...}] when the server gives them, else its detail) as an element */
export function healthNoteEl(ch) {
	const notes = Array.isArray(ch?.notes) ? ch.notes.map((n) => ({ code: n.code, params: n })) : parseNotes(ch?.detail);
	if (!notes.length) return null;
	const parts = notes.map((n) => {
		const p = n.params || {};
		let nodes;
		switch (n.code) {
			case 'fallback':
				nodes = tNodes('note.fallback', { provider: ltr(p.provider, 'provider'), status: tOr(`health.${p.status}`, p.status) });
				break;
			case 'error_rate':
				nodes = tNodes('note.error_rate', { rate: fmtNumber(Number(p.rate) / 100, { style: 'percent' }), minutes: fmtNumber(Number(p.minutes)) });
				break;
			case 'check_failed':
				nodes = getLang() === 'en' && p.error ? tNodes('note.check_failed_because', { error: p.error }) : [t('note.check_failed')];
				break;
			default: {
				const known = n.code && tOr(`note.${n.code}`, null);
				if (known) nodes = [known];
				else if (n.code) nodes = tNodes('note.unknown_code', { code: codeNode(n.code) });
				else nodes = getLang() === 'en' && p.text ? [p.text] : [t('note.unknown')];
			}
		}
		return h('span', { class: 'note', dataset: { code: n.code || '' } }, nodes);
	});
	const out = [];
	parts.forEach((p, i) => { if (i) out.push(' · '); out.push(p); });
	return h('p', { class: 'muted small health-note', title: ch?.detail || null }, out);
}
