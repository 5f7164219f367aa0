// Messages: the clinic's messages, newest first, kept live by a realtime subscription
// (new rows and status changes appear without a reload); filters by status, channel, day
// and phone; a message's timeline from message_logs; retry for a failed one.
import { retry, errorText } from '../api.js';
import { reasonEl, detailEl, ltr, codeNode } from '../codes.js';
import { watch } from '../live.js';
import { h, fill, debounce } from '../dom.js';
import { t, tOr, getLang, fmtNumber, fmtMoney, fmtDateTime, fmtTime, zonedToDate, pbDate, asciiDigits, todayLocal } from '../i18n.js';
import { badge } from './overview.js';

export const STATUSES = ['scheduled', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'undelivered', 'canceled', 'skipped'];
export const CHANNELS = ['sms', 'whatsapp', 'email'];
const PAGE = 50;
// Filters survive a visit to another screen and a language switch.
const filters = { status: '', channel: '', day: '', phone: '' };

export function mount(el, ctx, params) {
	const { pb } = ctx;
	let alive = true;
	let unsub = null;
	let hasMore = false; // older messages exist beyond the oldest row shown
	let loadSeq = 0;
	const rows = new Map(); // id -> record
	let openId = null;
	let shown = null; // the record the dialog shows
	let detailRefresh = null;

	const live = h('span', { class: 'live', id: 'live-state', dataset: { state: 'connecting' } }, t('messages.connecting'));
	const count = h('p', { class: 'muted', id: 'messages-count', 'aria-live': 'polite' });
	const listError = h('p', { class: 'form-error', role: 'alert', hidden: true });
	const tbody = h('tbody', { id: 'messages-body' });
	const more = h('button', { type: 'button', id: 'messages-more', hidden: true, onclick: () => load(true) }, t('messages.more'));
	const empty = h('p', { class: 'empty', id: 'messages-empty', hidden: true }, t('messages.empty'));
	const dialog = h('dialog', { class: 'detail', id: 'message-detail', 'aria-labelledby': 'detail-title' });
	dialog.addEventListener('close', () => { openId = null; });

	const sel = (name, options, label) => {
		const id = `filter-${name}`;
		return h('div', { class: 'field' },
			h('label', { for: id }, label),
			h('select', {
				id, value: filters[name],
				onchange: (ev) => { filters[name] = ev.target.value; load(); },
			}, h('option', { value: '' }, t('messages.all')), options));
	};
	const phone = h('input', {
		id: 'filter-phone', type: 'search', dir: 'ltr', inputmode: 'tel', autocomplete: 'off', value: filters.phone,
		placeholder: '05…', oninput: debounce((ev) => { filters.phone = ev.target.value; load(); }, 350),
	});
	const day = h('input', {
		id: 'filter-day', type: 'date', value: filters.day, max: todayLocal(),
		onchange: (ev) => { filters.day = ev.target.value; load(); },
	});
	const form = h('form', { class: 'filters', role: 'search', 'aria-label': t('messages.filters'), onsubmit: (ev) => ev.preventDefault() },
		sel('status', STATUSES.map((s) => h('option', { value: s }, tOr(`status.${s}`, s))), t('messages.status')),
		sel('channel', CHANNELS.map((c) => h('option', { value: c }, t(`channel.${c}`))), t('messages.channel')),
		h('div', { class: 'field' }, h('label', { for: 'filter-day' }, t('messages.day')), day),
		h('div', { class: 'field' }, h('label', { for: 'filter-phone' }, t('messages.phone')), phone),
		h('div', { class: 'field actions' }, h('button', {
			type: 'button', id: 'filter-clear',
			onclick: () => { Object.assign(filters, { status: '', channel: '', day: '', phone: '' }); form.reset(); load(); },
		}, t('messages.clear'))));

	fill(el,
		h('div', { class: 'screen-head' }, h('h1', {}, t('messages.title')), h('div', { class: 'head-actions' }, live,
			h('a', { class: 'button primary', href: '#/compose' }, t('messages.new')))),
		form, count, listError,
		h('div', { class: 'table-wrap' },
			h('table', { class: 'list messages', 'aria-describedby': 'messages-count' },
				h('thead', {}, h('tr', {},
					h('th', { scope: 'col' }, t('messages.col_time')),
					h('th', { scope: 'col' }, t('messages.col_to')),
					h('th', { scope: 'col' }, t('messages.col_channel')),
					h('th', { scope: 'col' }, t('messages.col_status')),
					h('th', { scope: 'col', class: 'col-body' }, t('messages.col_message')),
					h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('messages.col_actions'))))),
				tbody)),
		empty, more, dialog);

	function filterExpr() {
		const parts = [];
		const p = {};
		if (filters.status) { parts.push('status = {:status}'); p.status = filters.status; }
		if (filters.channel) { parts.push('channel = {:channel}'); p.channel = filters.channel; }
		if (filters.day) {
			const next = nextDay(filters.day);
			parts.push('created >= {:from} && created < {:to}');
			p.from = pbDate(zonedToDate(filters.day));
			p.to = pbDate(zonedToDate(next));
		}
		const q = phoneQuery(filters.phone);
		if (q) { parts.push('to ~ {:phone}'); p.phone = q; }
		return parts.length ? pb.filter(parts.join(' && '), p) : '';
	}

	/** the same filter, on one record from the realtime stream */
	function matches(r) {
		if (filters.status && r.status !== filters.status) return false;
		if (filters.channel && r.channel !== filters.channel) return false;
		if (filters.day) {
			const c = new Date(r.created.replace(' ', 'T'));
			if (c < zonedToDate(filters.day) || c >= zonedToDate(nextDay(filters.day))) return false;
		}
		const q = phoneQuery(filters.phone);
		if (q && !String(r.to).toLowerCase().includes(q.toLowerCase())) return false;
		return true;
	}

	/**
	 * load shows the newest page, or with older the page after the oldest row shown. Pages
	 * follow a cursor (created, id) rather than an offset, and nothing is counted, so a page
	 * costs the same at a clinic's first message and at its millionth.
	 */
	async function load(older = false) {
		listError.hidden = true;
		const seq = ++loadSeq;
		const last = older && tbody.lastElementChild ? rows.get(tbody.lastElementChild.dataset.id) : null;
		const after = last ? pb.filter('created < {:c} || (created = {:c} && id < {:id})', { c: last.created, id: last.id }) : '';
		const filter = [filterExpr(), after].filter(Boolean).map((x) => `(${x})`).join(' && ');
		try {
			// One more than a page tells whether another page follows.
			const res = await pb.collection('messages').getList(1, PAGE + 1, { filter, sort: '-created,-id', skipTotal: true });
			if (!alive || seq !== loadSeq) return;
			if (!last) { rows.clear(); tbody.replaceChildren(); }
			hasMore = res.items.length > PAGE;
			for (const r of res.items.slice(0, PAGE)) {
				if (rows.has(r.id)) continue;
				rows.set(r.id, r);
				tbody.append(row(r));
			}
			more.hidden = !hasMore;
			showCount();
		} catch (err) {
			if (ctx.fail(err)) return;
			fill(listError, errorText(err));
			listError.hidden = false;
		}
	}

	function showCount() {
		fill(count, t(hasMore ? 'messages.count_more' : 'messages.count_all', { shown: fmtNumber(rows.size) }));
		empty.hidden = rows.size > 0;
	}

	function row(r, fresh = false) {
		const text = r.body || r.subject || (r.template ? `${r.template}` : '');
		return h('tr', { dataset: { id: r.id, status: r.status }, class: fresh ? 'fresh' : null },
			h('td', { class: 'nowrap', 'data-label': t('messages.col_time') }, fmtDateTime(r.created)),
			h('td', { class: 'nowrap', 'data-label': t('messages.col_to') }, ltr(r.to, 'phone')),
			h('td', { 'data-label': t('messages.col_channel') }, tOr(`channel.${r.channel}`, r.channel)),
			h('td', { 'data-label': t('messages.col_status') }, badge('status', r.status), r.status_reason ? reasonEl(r.status_reason, { class: 'reason' }) : null),
			h('td', { class: 'col-body', 'data-label': t('messages.col_message') }, h('span', { class: 'body-excerpt', dir: 'auto', translate: 'no' }, text)),
			h('td', { class: 'row-actions' },
				h('button', { type: 'button', class: 'small', onclick: () => openDetail(r.id), 'aria-label': t('messages.view_label', { to: r.to }) }, t('messages.view')),
				r.status === 'failed' ? retryButton(r, 'small') : null));
	}

	function retryButton(r, cls = '') {
		const b = h('button', {
			type: 'button', class: `retry ${cls}`, dataset: { id: r.id },
			onclick: async () => {
				b.disabled = true;
				try {
					const rec = await retry(r.id);
					if (!alive) return;
					ctx.toast(t('messages.retried'));
					// The answer is the message queued again: the row and an open dialog show it
					// (status, attempts, timeline) now, and realtime moves them on from there.
					if (rec?.id) upsert(rec, 'update');
				} catch (err) {
					if (ctx.fail(err)) return;
					ctx.toast(errorText(err), 'error');
					b.disabled = false;
				}
			},
		}, t('messages.retry'));
		return b;
	}

	function upsert(r, action) {
		const known = rows.get(r.id) || (shown?.id === r.id ? shown : null);
		if (action !== 'delete' && older(r, known)) return;
		const existing = tbody.querySelector(`tr[data-id="${CSS.escape(r.id)}"]`);
		if (action === 'delete') {
			existing?.remove();
			rows.delete(r.id);
		} else if (existing) {
			rows.set(r.id, r);
			existing.replaceWith(row(r));
		} else if (matches(r) && isNewer(r)) {
			// A create, or the first update of a message whose create event was not heard.
			rows.set(r.id, r);
			insertSorted(row(r, true), r);
		}
		showCount();
		if (openId === r.id && action !== 'delete') {
			renderDetail(r);
			detailRefresh?.();
		}
	}

	/** newer than the oldest row shown (older ones belong to a later page) */
	function isNewer(r) {
		const last = tbody.lastElementChild && rows.get(tbody.lastElementChild.dataset.id);
		return !last || more.hidden || r.created > last.created || (r.created === last.created && r.id > last.id);
	}

	function insertSorted(tr, r) {
		for (const el of tbody.children) {
			const o = rows.get(el.dataset.id);
			if (o && (o.created < r.created || (o.created === r.created && o.id < r.id))) {
				el.before(tr);
				return;
			}
		}
		tbody.append(tr);
	}

	// Catch up every few seconds on rows whose realtime event was missed (a reconnect, or a
	// create the server did not announce): the newest first page, merged in place.
	async function catchUp() {
		if (!alive || document.hidden) return;
		try {
			const newest = tbody.firstElementChild && rows.get(tbody.firstElementChild.dataset.id);
			const since = newest ? pb.filter('created >= {:c}', { c: newest.created }) : '';
			const f = [filterExpr(), since].filter(Boolean).map((x) => `(${x})`).join(' && ');
			const res = await pb.collection('messages').getList(1, PAGE, { filter: f, sort: '-created,-id', skipTotal: true });
			if (!alive) return;
			for (const r of res.items.reverse()) if (!rows.has(r.id)) upsert(r, 'create');
		} catch { /* the next round tries again */ }
	}
	const catchUpTimer = setInterval(catchUp, 5000);

	async function openDetail(id) {
		openId = id;
		let r = rows.get(id);
		try {
			r = await pb.collection('messages').getOne(id);
		} catch (err) {
			if (ctx.fail(err)) return;
			if (!r) { ctx.toast(errorText(err), 'error'); return; }
		}
		if (!alive) return;
		renderDetail(r);
		if (!dialog.open) dialog.showModal();
		detailRefresh = debounce(() => loadLogs(id), 150);
		loadLogs(id);
	}

	const timeline = h('ol', { class: 'timeline', id: 'timeline' });
	function renderDetail(r) {
		shown = r;
		dialog.dataset.id = r.id;
		const kv = (label, value, opts = {}) => (value == null || value === '' ? null : [h('dt', {}, label), h('dd', opts, value)]);
		fill(dialog,
			h('div', { class: 'dialog-head' },
				h('h2', { id: 'detail-title' }, t('messages.detail_title')),
				h('button', { type: 'button', class: 'icon', 'aria-label': t('common.close'), onclick: () => dialog.close() }, '×')),
			h('div', { class: 'detail-body' },
				h('div', { class: 'detail-status' }, badge('status', r.status, 'detail-status'), r.status === 'failed' ? retryButton(r) : null),
				h('dl', { class: 'kv' },
					kv(t('messages.col_to'), ltr(r.to, 'phone')),
					kv(t('messages.col_channel'), tOr(`channel.${r.channel}`, r.channel)),
					kv(t('messages.reason'), r.status_reason ? reasonEl(r.status_reason, { id: 'detail-reason' }) : ''),
					kv(t('messages.template'), r.template ? codeNode(r.template) : ''),
					kv(t('messages.patient'), r.patient_id ? ltr(r.patient_id) : ''),
					kv(t('messages.language'), r.language ? t(`lang.${r.language}`) : ''),
					kv(t('messages.provider'), r.provider ? ltr(r.provider, 'provider') : ''),
					kv(t('messages.attempts'), r.attempts ? fmtNumber(r.attempts) : '', { id: 'detail-attempts', dataset: { value: r.attempts } }),
					kv(t('messages.error'), errorNodes(r), { id: 'detail-error' }),
					kv(t('messages.encoding'), r.encoding ? t(`encoding.${r.encoding}`) : ''),
					kv(t('compose.segments'), r.channel === 'sms' && r.segments ? fmtNumber(r.segments) : ''),
					kv(t('messages.cost'), r.cost ? (r.currency ? fmtMoney(r.cost, r.currency) : fmtNumber(r.cost, { maximumFractionDigits: 4 })) : ''),
					kv(t('messages.created'), fmtDateTime(r.created)),
					kv(t('messages.sent_at'), r.sent_at ? fmtDateTime(r.sent_at) : ''),
					kv(t('messages.delivered_at'), r.delivered_at ? fmtDateTime(r.delivered_at) : ''),
					kv(t('messages.read_at'), r.read_at ? fmtDateTime(r.read_at) : '')),
				r.subject ? h('p', { class: 'subject', dir: 'auto', translate: 'no' }, r.subject) : null,
				h('div', { class: 'bubble', dir: 'auto', id: 'detail-body', translate: 'no' }, r.body || ''),
				h('h3', {}, t('messages.timeline')),
				timeline));
	}

	async function loadLogs(id) {
		try {
			const logs = await pb.collection('message_logs').getFullList({ filter: pb.filter('message = {:id}', { id }), sort: 'created,id' });
			if (!alive || openId !== id) return;
			timeline.dataset.id = id;
			fill(timeline, logs.length ? logs.map((l) => h('li', { dataset: { event: l.event, status: l.status || '' } },
				h('time', { datetime: l.created }, fmtTime(l.created)),
				h('span', { class: 'event' }, tOr(`event.${l.event}`, l.event)),
				l.status ? badge('status', l.status) : null,
				l.provider ? h('span', { class: 'muted' }, ltr(l.provider, 'provider')) : null,
				l.error_code ? h('code', {}, l.error_code) : null,
				detailEl(l.detail))) : h('li', { class: 'muted' }, t('messages.no_logs')));
		} catch (err) {
			if (ctx.fail(err)) return;
			fill(timeline, h('li', { class: 'form-error' }, errorText(err)));
		}
	}

	async function subscribe() {
		try {
			const u = await watch('messages', (e) => upsert(e.record, e.action));
			if (!alive) { u(); return; }
			unsub = u;
			live.dataset.state = 'live';
			fill(live, t('messages.live'));
		} catch (err) {
			live.dataset.state = 'off';
			fill(live, t('messages.not_live'));
		}
	}

	function cleanup() {
		alive = false;
		clearInterval(catchUpTimer);
		if (unsub) unsub();
		if (dialog.open) dialog.close();
	}

	const api = { unmount: cleanup, update: (p) => { if (p.get('id')) openDetail(p.get('id')); } };
	subscribe();
	load().then(() => { if (params?.get('id')) openDetail(params.get('id')); });
	return api;
}

// The order of a message's statuses within one attempt, as the server ranks provider reports
// (hooks/status.go); canceled and skipped end a message.
const STEP = { scheduled: 0, queued: 1, sending: 2, sent: 3, failed: 4, undelivered: 4, delivered: 5, read: 6, canceled: 7, skipped: 7 };

/**
 * older reports whether r is an older state of the message than known. Two changes can
 * reach the page out of order: a retry's answer after the realtime events of the sending it
 * started, and two updates written in the same millisecond (sending, then failed), which
 * the server announces independently. Newer is a later update time, then a later attempt,
 * then a later step.
 */
function older(r, known) {
	if (!known || !r.updated || !known.updated) return false;
	if (r.updated !== known.updated) return r.updated < known.updated;
	if ((r.attempts || 0) !== (known.attempts || 0)) return (r.attempts || 0) < (known.attempts || 0);
	return (STEP[r.status] ?? 0) < (STEP[known.status] ?? 0);
}

function nextDay(day) {
	const [y, m, d] = day.split('-').map(Number);
	return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}

/** a typed phone as the part of an E.164 number to search for: 050 123 → "50123" */
function phoneQuery(v) {
	const s = asciiDigits(String(v || '').trim());
	if (!s) return '';
	if (s.includes('@')) return s;
	let d = s.replace(/\D/g, '');
	if (d.startsWith('00')) d = d.slice(2);
	else if (d.startsWith('0')) d = d.slice(1);
	return d;
}

/**
 * a failed message's error: the provider's code, and its explanation on an English screen
 * (the provider writes it in English; an Arabic screen keeps it in the title).
 */
function errorNodes(r) {
	if (!r.error_code && !r.error_message) return '';
	const code = r.error_code ? codeNode(r.error_code) : null;
	if (!r.error_message) return code;
	if (getLang() === 'en') return h('span', { dir: 'auto' }, code, code ? ' ' : null, r.error_message);
	return h('span', { title: r.error_message }, code, code ? ' ' : null, h('span', { class: 'muted small' }, `(${t('messages.error_hidden')})`));
}
