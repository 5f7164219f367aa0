// Compose: one message to one patient, from a template (its {{variables}} become fields)
// or free text, with a live preview (encoding, segments, cost) from POST
// /api/clinicmsg/preview. The draft lives in sessionStorage: a failed send, a language
// switch or a signed-out session loses nothing that was typed.
import { preview, fieldErrors, errorText } from '../api.js';
import { reasonEl, previewProblem, tNodes, ltr, codeNode } from '../codes.js';
import { h, fill, debounce } from '../dom.js';
import { t, fmtNumber, fmtMoney } from '../i18n.js';
import { field, errorsFor, contentEditor, contentErrors, activeTemplates, filledVars, previewVars, missingVars } from '../form.js';
import { badge } from './overview.js';

const DRAFT_KEY = 'clinicmsg.compose';

function newKey() {
	const a = new Uint8Array(12);
	crypto.getRandomValues(a);
	return `dash-${Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function loadDraft() {
	try {
		const d = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || 'null');
		if (d && typeof d === 'object') return { ...blank(), ...d, vars: { ...(d.vars || {}) } };
	} catch { /* a broken draft starts over */ }
	return blank();
}

function blank() {
	return { channel: 'sms', mode: 'template', template: '', body: '', subject: '', language: '', category: '', vars: {}, to: '', patient_id: '', key: newKey() };
}

export function mount(el, ctx) {
	const { pb } = ctx;
	const state = loadDraft();
	let alive = true;
	let templates = [];
	const save = () => sessionStorage.setItem(DRAFT_KEY, JSON.stringify(state));

	const general = h('div', { class: 'form-error', id: 'compose-error', role: 'alert', hidden: true });
	const result = h('div', { class: 'result', id: 'compose-result', 'aria-live': 'polite' });
	const to = h('input', { id: 'compose-to', type: 'text', dir: 'ltr', autocomplete: 'off', inputmode: 'tel', value: state.to, oninput: (e) => { state.to = e.target.value; errors.clear('to'); save(); } });
	const patient = h('input', { id: 'compose-patient', type: 'text', dir: 'ltr', autocomplete: 'off', value: state.patient_id, oninput: (e) => { state.patient_id = e.target.value; save(); } });
	const sendBtn = h('button', { type: 'submit', class: 'primary', id: 'compose-send' }, t('compose.send'));
	const editorBox = h('div', {}, h('p', { class: 'muted' }, t('common.loading')));
	const previewBox = h('section', { class: 'panel preview', id: 'compose-preview', 'aria-labelledby': 'preview-title', 'aria-live': 'polite' });

	const form = h('form', { class: 'compose-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); send(); } },
		h('div', { class: 'row' },
			field('to', t('compose.to'), to, { hint: tNodes('compose.to_hint', { local: ltr('0501234567', 'phone'), intl: ltr('+966 50…', 'phone') }) }),
			field('patient_id', t('compose.patient_id'), patient, { hint: t('compose.patient_hint') })),
		editorBox,
		general,
		h('div', { class: 'form-actions' }, sendBtn,
			h('button', { type: 'button', id: 'compose-reset', onclick: () => reset(true) }, t('compose.clear'))));
	const errors = errorsFor(form);

	fill(el,
		h('div', { class: 'screen-head' }, h('h1', {}, t('compose.title'))),
		h('div', { class: 'compose-grid' }, h('div', {}, form, result), previewBox));

	function onChange() {
		save();
		for (const f of ['template', 'context', 'body', 'subject', 'channel', 'language', 'category']) errors.clear(f);
		for (const f of form.querySelectorAll('.field.invalid[data-field^="var."]')) {
			if (String(state.vars[f.dataset.field.slice(4)] ?? '').trim()) errors.clear(f.dataset.field);
		}
		general.hidden = true;
		to.setAttribute('inputmode', state.channel === 'email' ? 'email' : 'tel');
		refreshPreview();
	}

	let previewSeq = 0;
	const refreshPreview = debounce(async () => {
		const seq = ++previewSeq;
		const req = { channel: state.channel, language: state.language || undefined };
		const tpl = templates.find((x) => x.code === state.template);
		if (state.mode === 'template') {
			if (!tpl) { drawPreview(null, t('compose.preview_pick')); return; }
			req.template = tpl.code;
			req.context = previewVars(tpl, state.vars);
		} else {
			if (!state.body.trim()) { drawPreview(null, t('compose.preview_type')); return; }
			req.body = state.body;
			if (state.channel === 'email') req.subject = state.subject;
		}
		try {
			const p = await preview(req);
			if (alive && seq === previewSeq) drawPreview(p);
		} catch (err) {
			if (ctx.fail(err) || !alive || seq !== previewSeq) return;
			const fe = fieldErrors(err);
			drawPreview(null, Object.values(fe)[0] || errorText(err), true);
		}
	}, 250);

	function drawPreview(p, note, isError) {
		const title = h('h2', { id: 'preview-title' }, t('compose.preview'));
		if (!p) {
			fill(previewBox, title, h('p', { class: isError ? 'form-error' : 'muted', id: 'preview-note' }, note));
			return;
		}
		const cost = p.cost_estimate;
		fill(previewBox, title,
			p.subject ? h('p', { class: 'subject', dir: 'auto', translate: 'no' }, p.subject) : null,
			h('div', { class: 'bubble', dir: 'auto', id: 'preview-body', lang: p.language || null, translate: 'no' }, p.body),
			h('dl', { class: 'kv inline' },
				h('dt', {}, t('compose.characters')), h('dd', { id: 'preview-chars', dataset: { value: p.characters } }, fmtNumber(p.characters)),
				p.encoding ? [h('dt', {}, t('compose.encoding')), h('dd', { id: 'preview-encoding', dataset: { value: p.encoding } }, t(`encoding.${p.encoding}`))] : null,
				h('dt', {}, t('compose.segments')), h('dd', { id: 'preview-segments', dataset: { value: p.segments } }, fmtNumber(p.segments)),
				h('dt', {}, t('compose.cost')), h('dd', { id: 'preview-cost' }, cost ? fmtMoney(cost.amount, cost.currency) : t('compose.cost_unknown'))),
			p.encoding === 'ucs2' && state.channel === 'sms' ? h('p', { class: 'hint' }, t('compose.ucs2_hint')) : null,
			p.error ? h('p', { class: 'form-error', id: 'preview-error' }, previewProblem(p)) : null);
	}

	async function send() {
		errors.clear();
		general.hidden = true;
		const body = { channel: state.channel, to: state.to.trim(), idempotency_key: state.key };
		if (state.patient_id.trim()) body.patient_id = state.patient_id.trim();
		if (state.language) body.language = state.language;
		if (state.category) body.category = state.category;
		if (state.mode === 'template') {
			if (!state.template) {
				errors.show({ template: t('compose.template_required') });
				return;
			}
			// Each variable left empty is marked on its own field, all at once (the server
			// names only the first).
			const tpl = templates.find((x) => x.code === state.template);
			const missing = tpl ? missingVars(tpl, state.vars, { language: state.language, channel: state.channel }) : [];
			if (missing.length) {
				const rest = errors.show(Object.fromEntries(missing.map((n) => [`var.${n}`, t('compose.var_required')])));
				if (!Object.keys(rest).length) return; // else the server says what is wrong
				errors.clear();
			}
			body.template = state.template;
			body.context = filledVars(state.vars);
		} else {
			body.body = state.body;
			if (state.channel === 'email') body.subject = state.subject;
		}
		sendBtn.disabled = true;
		fill(sendBtn, t('compose.sending'));
		try {
			const rec = await pb.collection('messages').create(body);
			if (!alive) return;
			showResult(rec);
			if (rec.status === 'skipped') {
				// Stored but never sent (opted out, a duplicate): the draft stays for a
				// corrected send, under a new key so that it is not taken for this one.
				ctx.toast(t('compose.skipped_toast'), 'warn');
				state.key = newKey();
				save();
			} else {
				ctx.toast(t('compose.sent_toast'));
				reset(false);
			}
		} catch (err) {
			if (!alive) return;
			if (err.status === 401) { save(); ctx.fail(err); return; }
			const fe = contentErrors(err, form);
			if (err.status === 409 && fe.idempotency_key) {
				// The same draft reached the server before (the answer was lost): it is sent.
				fill(result, h('p', { class: 'notice' }, t('compose.already_sent')));
				reset(false);
				return;
			}
			const rest = errors.show(fe);
			const restNodes = Object.entries(rest).map(([k, v], i) => [i ? ' · ' : null, codeNode(k), ': ', v]);
			fill(general, restNodes.length ? restNodes : (Object.keys(fe).length ? t('compose.fix_fields') : errorText(err)));
			general.hidden = false;
		} finally {
			sendBtn.disabled = false;
			fill(sendBtn, t('compose.send'));
		}
	}

	/** the answer for the message: accepted (green), or skipped (amber, with the reason) */
	function showResult(rec) {
		const link = h('a', { href: `#/messages?id=${encodeURIComponent(rec.id)}` }, t('compose.open_message'));
		const to = ltr(rec.to, 'phone');
		if (rec.status === 'skipped') {
			fill(result, h('div', { class: 'notice warn', id: 'compose-sent', role: 'alert', dataset: { id: rec.id, status: rec.status } },
				h('p', { class: 'notice-title' }, t('compose.skipped_for'), ' ', to, ' ', t('compose.skipped_was'), ' ', badge('status', rec.status)),
				rec.status_reason ? h('p', { class: 'reason-text' }, reasonEl(rec.status_reason, { id: 'compose-sent-reason' })) : null,
				h('p', { class: 'muted' }, t('compose.skipped_hint')),
				link));
			return;
		}
		fill(result, h('div', { class: 'notice ok', id: 'compose-sent', dataset: { id: rec.id, status: rec.status } },
			h('p', {}, t('compose.sent_to'), ' ', to, ' ', badge('status', rec.status)),
			rec.status_reason ? h('p', { class: 'muted' }, reasonEl(rec.status_reason, { id: 'compose-sent-reason' })) : null,
			link));
	}

	/** after a send: the recipient and texts go, the channel and template stay */
	function reset(all) {
		const keep = all ? blank() : { ...blank(), channel: state.channel, mode: state.mode, template: state.template, language: state.language, category: state.category };
		Object.assign(state, keep, { key: newKey() });
		if (all) fill(result);
		save();
		to.value = state.to;
		patient.value = state.patient_id;
		drawEditor();
	}

	let editor = null;
	function drawEditor() {
		editor = contentEditor(state, templates, { onChange, prefix: 'compose' });
		fill(editorBox, editor.el);
		refreshPreview();
	}

	activeTemplates(pb).then((list) => {
		if (!alive) return;
		templates = list;
		if (!list.length && state.mode === 'template' && !state.template) state.mode = 'text';
		drawEditor();
	}).catch((err) => {
		if (ctx.fail(err)) return;
		templates = [];
		drawEditor();
		fill(general, errorText(err));
		general.hidden = false;
	});
	drawPreview(null, t('common.loading'));
	return { unmount() { alive = false; refreshPreview.cancel(); save(); } };
}
