// Campaigns: one message to many patients from a template or text and a pasted or
// uploaded CSV; a check of the numbers before sending (POST /api/clinicmsg/preview with
// recipients); progress bars that move with the campaign records over realtime; cancel.
import { preview, fieldErrors, errorText } from '../api.js';
import { apiCodeText, previewProblem, tNodes, ltr, codeNode } from '../codes.js';
import { watch } from '../live.js';
import { h, fill, debounce } from '../dom.js';
import { t, tOr, fmtNumber, fmtMoney, fmtDateTime, zonedToDate, pbDate, getTimeZone } from '../i18n.js';
import { field, errorsFor, contentEditor, contentErrors, activeTemplates, filledVars, previewVars } from '../form.js';
import { recipientsFrom } from '../csv.js';
import { badge } from './overview.js';

const ACTIVE = ['draft', 'scheduled', 'running'];
// The form survives a visit to another screen and a language switch.
let draft = null;

function blank() {
	return { name: '', channel: 'sms', mode: 'template', template: '', body: '', subject: '', language: '', category: '', vars: {}, csv: '', sendAt: '' };
}

export function mount(el, ctx) {
	const { pb } = ctx;
	let alive = true;
	let unsub = null;
	let templates = [];
	const state = draft || (draft = blank());
	const items = new Map();
	let checked = null; // the preview answer for the current form, or null
	let lastCols = '';

	const listBox = h('div', { class: 'campaign-list', id: 'campaign-list' });
	const listError = h('p', { class: 'form-error', role: 'alert', hidden: true });
	const general = h('div', { class: 'form-error', id: 'campaign-error', role: 'alert', hidden: true });
	const checkBox = h('div', { class: 'check', id: 'campaign-check', 'aria-live': 'polite' });
	const csvInfo = h('p', { class: 'hint', id: 'csv-info' });
	const name = h('input', { id: 'campaign-name', type: 'text', dir: 'auto', value: state.name, oninput: (e) => { state.name = e.target.value; } });
	const csv = h('textarea', {
		id: 'campaign-csv', rows: 6, dir: 'ltr', spellcheck: 'false', value: state.csv,
		placeholder: 'to,patient_id,patient_name\n0501234567,P-1042,Sara',
		oninput: (e) => { state.csv = e.target.value; changed(); },
	});
	const file = h('input', {
		id: 'campaign-file', type: 'file', accept: '.csv,.txt,text/csv,text/plain',
		onchange: async (e) => {
			const f = e.target.files?.[0];
			if (!f) return;
			state.csv = await f.text();
			csv.value = state.csv;
			changed();
		},
	});
	const sendAt = h('input', { id: 'campaign-send-at', type: 'datetime-local', value: state.sendAt, oninput: (e) => { state.sendAt = e.target.value; } });
	const checkBtn = h('button', { type: 'button', id: 'campaign-check-btn', onclick: () => check() }, t('campaigns.check'));
	const startBtn = h('button', { type: 'submit', class: 'primary', id: 'campaign-start', disabled: true }, t('campaigns.start'));
	const editorBox = h('div', {});
	const form = h('form', { class: 'campaign-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); start(); } },
		field('name', t('campaigns.name'), name),
		editorBox,
		field('recipients', t('campaigns.recipients'), csv, { hint: tNodes('campaigns.recipients_hint', { to: codeNode('to'), patient_id: codeNode('patient_id') }) }),
		h('div', { class: 'row' },
			field('file', t('campaigns.upload'), file),
			field('send_at', t('campaigns.send_at'), sendAt, { hint: tNodes('campaigns.send_at_hint', { tz: ltr(getTimeZone(), 'zone') }) })),
		csvInfo,
		checkBox,
		general,
		h('div', { class: 'form-actions' }, checkBtn, startBtn));
	const errors = errorsFor(form);

	fill(el,
		h('div', { class: 'screen-head' }, h('h1', {}, t('campaigns.title'))),
		h('div', { class: 'campaign-grid' },
			h('section', { class: 'panel', 'aria-labelledby': 'new-campaign' }, h('h2', { id: 'new-campaign' }, t('campaigns.new')), form),
			h('section', { class: 'panel', 'aria-labelledby': 'campaigns-list-title' }, h('h2', { id: 'campaigns-list-title' }, t('campaigns.list')), listError, listBox)));

	function parsed() {
		return recipientsFrom(state.csv);
	}

	function changed() {
		checked = null;
		startBtn.disabled = true;
		fill(checkBox);
		errors.clear();
		general.hidden = true;
		drawCsvInfo();
	}

	const drawCsvInfo = debounce(() => {
		const p = parsed();
		fill(csvInfo, p.rows ? t('campaigns.csv_rows', { n: fmtNumber(p.recipients.length) }) : '',
			p.columns.length ? [' ', tNodes('campaigns.csv_columns', { cols: codeNode(p.columns.join(', ')) })] : '',
			p.ignored ? ` ${t('campaigns.csv_no_header')}` : '');
		const cols = p.columns.join('\u0000');
		if (cols !== lastCols) { lastCols = cols; drawEditor(); } // variables from CSV columns leave the form
	}, 250);

	function request() {
		const p = parsed();
		const req = { channel: state.channel, recipients: p.recipients };
		if (state.language) req.language = state.language;
		const tpl = templates.find((x) => x.code === state.template);
		if (state.mode === 'template') {
			req.template = state.template;
			req.context = filledVars(state.vars);
		} else {
			req.body = state.body;
			if (state.channel === 'email') req.subject = state.subject;
		}
		return { req, p, tpl };
	}

	async function check() {
		errors.clear();
		general.hidden = true;
		const { req, p, tpl } = request();
		if (!p.recipients.length) { errors.show({ recipients: t('campaigns.recipients_required') }); return; }
		if (state.mode === 'template' && !tpl) { errors.show({ template: t('compose.template_required') }); return; }
		if (state.mode === 'text' && !state.body.trim()) { errors.show({ body: t('campaigns.body_required') }); return; }
		// The sample is rendered with the first recipient's own variables.
		const first = p.recipients.find((r) => typeof r === 'object') || {};
		const previewReq = { ...req };
		if (tpl) previewReq.context = previewVars(tpl, state.vars, first.context || {});
		checkBtn.disabled = true;
		try {
			const res = await preview(previewReq);
			if (!alive) return;
			checked = res;
			drawCheck(res);
			startBtn.disabled = !(res.recipients?.valid > 0);
		} catch (err) {
			if (ctx.fail(err)) return;
			const fe = contentErrors(err, form);
			const rest = errors.show(fe);
			if (Object.keys(rest).length || !Object.keys(fe).length) {
				fill(general, Object.values(rest)[0] || errorText(err));
				general.hidden = false;
			}
		} finally {
			checkBtn.disabled = false;
		}
	}

	function drawCheck(res) {
		const rc = res.recipients || { valid: 0, invalid: [] };
		const invalid = rc.invalid || [];
		const cost = res.cost_estimate;
		fill(checkBox,
			h('div', { class: 'check-summary' },
				h('p', { class: 'ok-count', id: 'check-valid', dataset: { value: rc.valid } }, t('campaigns.valid', { n: fmtNumber(rc.valid) })),
				h('p', { class: invalid.length ? 'bad-count' : 'muted', id: 'check-invalid', dataset: { value: invalid.length } }, t('campaigns.invalid', { n: fmtNumber(invalid.length) })),
				h('p', { class: 'muted' }, t('campaigns.per_message', { n: fmtNumber(res.segments ?? 1), enc: res.encoding ? t(`encoding.${res.encoding}`) : '' }),
					cost ? ` · ${t('campaigns.cost', { cost: fmtMoney(cost.amount, cost.currency) })}` : '')),
			invalid.length ? h('details', { class: 'invalid-list' },
				h('summary', {}, t('campaigns.show_invalid')),
				h('ul', {}, invalid.slice(0, 200).map((r) => h('li', {},
					r.index >= 0 ? `${t('campaigns.row', { n: fmtNumber(r.index + 1) })}: ` : '',
					ltr(r.to || '—', 'phone'), ' — ', apiCodeText(r.code ? { code: r.code, message: r.reason } : r.reason))))) : null,
			res.body ? [h('p', { class: 'legend' }, t('campaigns.sample')), h('div', { class: 'bubble', dir: 'auto', translate: 'no' }, res.body)] : null,
			res.error ? h('p', { class: 'form-error' }, previewProblem(res)) : null);
	}

	async function start() {
		if (!checked) { await check(); if (!checked) return; }
		const { req } = request();
		const body = { name: state.name.trim() || t('campaigns.unnamed'), ...req };
		if (state.category) body.category = state.category;
		if (state.sendAt) {
			const [day, time] = state.sendAt.split('T');
			body.send_at = pbDate(zonedToDate(day, time));
		}
		startBtn.disabled = true;
		try {
			const rec = await pb.collection('campaigns').create(body);
			if (!alive) return;
			items.set(rec.id, rec);
			drawList();
			ctx.toast(tNodes('campaigns.started', { name: h('bdi', { translate: 'no' }, rec.name) }));
			draft = blank();
			mountAgain();
		} catch (err) {
			if (ctx.fail(err)) return;
			const fe = contentErrors(err, form);
			const rest = errors.show(fe);
			if (Object.keys(rest).length || !Object.keys(fe).length) {
				fill(general, Object.values(rest)[0] || errorText(err));
				general.hidden = false;
			}
			startBtn.disabled = false;
		}
	}

	function mountAgain() {
		Object.assign(state, draft);
		name.value = '';
		csv.value = '';
		file.value = '';
		sendAt.value = '';
		checked = null;
		fill(checkBox);
		fill(csvInfo);
		drawEditor();
	}

	function drawEditor() {
		const editor = contentEditor(state, templates, {
			onChange: changed, prefix: 'campaign', columns: parsed().columns, autoFields: false,
		});
		const focused = document.activeElement?.id;
		fill(editorBox, editor.el);
		if (focused && editorBox.querySelector(`#${CSS.escape(focused)}`)) document.getElementById(focused).focus();
	}

	function drawList() {
		const list = [...items.values()].sort((a, b) => (a.created < b.created ? 1 : -1));
		if (!list.length) { fill(listBox, h('p', { class: 'empty' }, t('campaigns.empty'))); return; }
		fill(listBox, list.map(card));
	}

	function card(c) {
		const total = c.total || 0;
		// sent counts every message that went out, delivered ones included (as the summary's).
		const done = (c.sent || 0) + (c.failed || 0) + (c.skipped || 0);
		const pct = (n) => (total ? (100 * n) / total : 0);
		const seg = (cls, n) => (n ? h('span', { class: `seg ${cls}`, style: `inline-size:${pct(n)}%` }) : null);
		const counts = ['delivered', 'sent', 'failed', 'skipped', 'queued'];
		return h('article', { class: 'campaign', id: `campaign-${c.id}`, dataset: { id: c.id, status: c.status } },
			h('div', { class: 'panel-head' },
				c.name ? h('h3', { dir: 'auto', translate: 'no' }, c.name) : h('h3', {}, t('campaigns.unnamed')),
				badge('campaign', c.status)),
			h('p', { class: 'muted small' },
				tOr(`channel.${c.channel}`, c.channel), ' · ', c.template ? codeNode(c.template) : t('compose.mode_text'), ` · ${fmtDateTime(c.created)}`,
				c.send_at && c.status === 'scheduled' ? ` · ${t('campaigns.at', { time: fmtDateTime(c.send_at) })}` : ''),
			h('label', { class: 'sr-only', for: `progress-${c.id}` }, tNodes('campaigns.progress_label', { name: h('bdi', { translate: 'no' }, c.name || '') })),
			h('progress', { id: `progress-${c.id}`, max: Math.max(total, 1), value: done, class: 'sr-only-visual' }),
			h('div', { class: 'stacked', 'aria-hidden': 'true' },
				seg('delivered', c.delivered), seg('sent', (c.sent || 0) - (c.delivered || 0)), seg('failed', c.failed), seg('skipped', c.skipped)),
			h('p', { class: 'progress-text', id: `progress-text-${c.id}`, dataset: { done, total } },
				t('campaigns.progress', { done: fmtNumber(done), total: fmtNumber(total) })),
			h('ul', { class: 'counts' }, counts.map((k) => h('li', { dataset: { count: k, value: c[k] || 0 } },
				h('span', { class: `dot ${k}` }), `${t(`campaigns.count_${k}`)}: `, h('strong', {}, fmtNumber(c[k] || 0))))),
			ACTIVE.includes(c.status) ? actions(c) : null);
	}

	function actions(c) {
		const box = h('div', { class: 'card-actions' });
		const cancel = h('button', { type: 'button', class: 'danger', id: `cancel-${c.id}`, onclick: () => confirmCancel() }, t('campaigns.cancel'));
		const startDraft = c.status === 'draft' ? h('button', { type: 'button', onclick: () => setStatus(c, 'running') }, t('campaigns.start_draft')) : null;
		function confirmCancel() {
			fill(box,
				h('span', { class: 'confirm-text' }, t('campaigns.cancel_confirm')),
				h('button', { type: 'button', class: 'danger', id: `cancel-yes-${c.id}`, onclick: () => setStatus(c, 'canceled') }, t('campaigns.cancel_yes')),
				h('button', { type: 'button', onclick: () => { fill(box, startDraft, cancel); cancel.focus(); } }, t('campaigns.cancel_no')));
			box.querySelector('button')?.focus();
		}
		return fill(box, startDraft, cancel);
	}

	async function setStatus(c, status) {
		try {
			const rec = await pb.collection('campaigns').update(c.id, { status });
			items.set(rec.id, rec);
			drawList();
		} catch (err) {
			if (ctx.fail(err)) return;
			ctx.toast(Object.values(fieldErrors(err))[0] || errorText(err), 'error');
		}
	}

	async function load() {
		try {
			const res = await pb.collection('campaigns').getList(1, 30, { sort: '-created', fields: 'id,name,channel,template,status,total,queued,sent,delivered,failed,skipped,created,send_at,started_at,finished_at' });
			if (!alive) return;
			for (const c of res.items) items.set(c.id, c);
			drawList();
		} catch (err) {
			if (ctx.fail(err)) return;
			fill(listError, errorText(err));
			listError.hidden = false;
		}
	}

	async function subscribe() {
		try {
			const u = await watch('campaigns', (e) => {
				if (e.action === 'delete') items.delete(e.record.id);
				else items.set(e.record.id, e.record);
				drawList();
			}, { fields: 'id,name,channel,template,status,total,queued,sent,delivered,failed,skipped,created,send_at,started_at,finished_at' });
			if (alive) unsub = u; else u();
		} catch { /* the list still shows the last load */ }
	}

	activeTemplates(pb).then((list) => {
		if (!alive) return;
		templates = list;
		if (!list.length && state.mode === 'template') state.mode = 'text';
		drawEditor();
		drawCsvInfo();
	}).catch((err) => {
		if (ctx.fail(err)) return;
		drawEditor();
	});
	load();
	subscribe();
	return { unmount() { alive = false; drawCsvInfo.cancel(); if (unsub) unsub(); } };
}
