// form.js: labelled fields whose error line sits right under the control, and the
// template/text editor that Compose and Campaigns share.
import { h, fill, uid } from './dom.js';
import { t } from './i18n.js';
import { fieldErrors, missingVariable } from './api.js';
import { tNodes, codeNode } from './codes.js';

/**
 * field('to', label, control, {hint}) wraps a control with its label, a hint and an error
 * line; errors.show({to: 'msg'}) puts each message next to the field its key names.
 */
export function field(name, label, control, opts = {}) {
	const id = control.id || (control.id = uid(`f-${name}`));
	const errId = `err-${id}`;
	const hintId = `hint-${id}`;
	const described = [opts.hint ? hintId : null, errId].filter(Boolean).join(' ');
	const tag = opts.group ? 'fieldset' : 'div';
	if (!opts.group) control.setAttribute('aria-describedby', described);
	const el = h(tag, { class: `field ${opts.class || ''}`, dataset: { field: name } },
		opts.group ? h('legend', {}, label) : h('label', { for: id }, label),
		control,
		opts.hint ? h('p', { class: 'hint', id: hintId }, opts.hint) : null,
		h('p', { class: 'field-error', id: errId, hidden: true, role: 'alert' }));
	return el;
}

/** errorsFor(root): show/clear field errors under root by their data-field name */
export function errorsFor(root) {
	return {
		/** shows each {field: message}; returns the messages no field took */
		show(map) {
			const rest = {};
			for (const [k, msg] of Object.entries(map)) {
				const f = root.querySelector(`[data-field="${CSS.escape(k)}"]`);
				if (!f || f.hidden) { rest[k] = msg; continue; }
				const err = f.querySelector(':scope > .field-error');
				fill(err, msg);
				err.hidden = false;
				f.classList.add('invalid');
				f.querySelectorAll('input, select, textarea').forEach((c) => c.setAttribute('aria-invalid', 'true'));
			}
			const first = root.querySelector('.invalid input, .invalid select, .invalid textarea');
			first?.focus();
			return rest;
		},
		clear(name) {
			const sel = name ? `[data-field="${CSS.escape(name)}"]` : '.field.invalid';
			root.querySelectorAll(sel).forEach((f) => {
				f.classList.remove('invalid');
				const err = f.querySelector(':scope > .field-error');
				if (err) { err.hidden = true; err.replaceChildren(); }
				f.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
			});
		},
	};
}

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g;

/** the {{variables}} of a template, in order of first use */
export function placeholders(tpl) {
	const names = [];
	for (const text of [tpl?.subject_en, tpl?.subject_ar, tpl?.body_en, tpl?.body_ar]) {
		for (const m of String(text || '').matchAll(PLACEHOLDER)) if (!names.includes(m[1])) names.push(m[1]);
	}
	return names;
}

// Filled from the clinic by the server when not given.
export const AUTO_VARS = ['clinic_name'];

let templateCache = null;
/** the clinic's and the shared active templates (cached for the session) */
export async function activeTemplates(pb, fresh = false) {
	if (!templateCache || fresh) {
		templateCache = pb.collection('templates').getFullList({ filter: 'active = true', sort: 'code' }).catch((e) => {
			templateCache = null;
			throw e;
		});
	}
	return templateCache;
}

export function forgetTemplates() {
	templateCache = null;
}

export const CATEGORIES = ['reminder', 'confirmation', 'cancellation', 'results', 'general', 'marketing'];

/**
 * contentEditor edits state {channel, mode, template, body, subject, language, category,
 * vars}: a template with its variables, or free text. columns are variables that come
 * from elsewhere (a campaign's CSV columns): they get no field, and a note names them.
 * autoFields: false leaves out the variables the server fills (clinic_name). onChange
 * runs after every edit.
 */
export function contentEditor(state, templates, { onChange, columns = [], autoFields = true, prefix = 'c' }) {
	const root = h('div', { class: 'content-editor' });
	const changed = () => onChange?.();

	const channel = h('select', { id: `${prefix}-channel`, value: state.channel, onchange: (e) => { state.channel = e.target.value; draw(); changed(); } },
		['sms', 'whatsapp', 'email'].map((c) => h('option', { value: c }, t(`channel.${c}`))));
	const language = h('select', { id: `${prefix}-language`, value: state.language, onchange: (e) => { state.language = e.target.value; changed(); } },
		h('option', { value: '' }, t('compose.language_auto')), h('option', { value: 'en' }, t('lang.en')), h('option', { value: 'ar' }, t('lang.ar')));
	const category = h('select', { id: `${prefix}-category`, value: state.category, onchange: (e) => { state.category = e.target.value; changed(); } },
		h('option', { value: '' }, t('compose.category_default')), CATEGORIES.map((c) => h('option', { value: c }, t(`category.${c}`))));
	const modeName = uid('mode');
	const mode = h('div', { class: 'radios' }, ['template', 'text'].map((m) => h('label', { class: 'radio' },
		h('input', { type: 'radio', name: modeName, value: m, id: `${prefix}-mode-${m}`, checked: state.mode === m, onchange: () => { state.mode = m; draw(); changed(); } }),
		t(`compose.mode_${m}`))));
	const head = h('div', { class: 'row' },
		field('channel', t('compose.channel'), channel),
		field('language', t('compose.language'), language),
		field('category', t('compose.category'), category));
	const body = h('div', { class: 'content-body' });
	fill(root, head, field('mode', t('compose.content'), mode, { group: true, class: 'mode' }), body);

	function fits(tpl) {
		return tpl.channel === 'any' || tpl.channel === state.channel;
	}

	function draw() {
		const usable = templates.filter(fits);
		if (state.mode === 'template') {
			if (state.template && !usable.some((x) => x.code === state.template)) state.template = '';
			const select = h('select', {
				id: `${prefix}-template`, value: state.template,
				onchange: (e) => { state.template = e.target.value; draw(); changed(); },
			}, h('option', { value: '' }, usable.length ? t('compose.template_pick') : t('compose.template_none')),
			usable.map((x) => h('option', { value: x.code, translate: 'no' }, x.clinic ? x.code : `${x.code} (${t('templates.shared')})`)));
			const tpl = usable.find((x) => x.code === state.template);
			const all = placeholders(tpl);
			const fromColumns = all.filter((n) => columns.includes(n));
			const auto = autoFields ? [] : all.filter((n) => AUTO_VARS.includes(n) && !fromColumns.includes(n));
			const names = all.filter((n) => !fromColumns.includes(n) && !auto.includes(n));
			const vars = names.map((n) => {
				const input = h('input', {
					id: `${prefix}-var-${n}`, type: 'text', dir: 'auto', value: state.vars[n] ?? '', dataset: { var: n },
					oninput: (e) => { state.vars[n] = e.target.value; changed(); },
				});
				return field(`var.${n}`, codeNode(n), input, { hint: AUTO_VARS.includes(n) ? t('compose.var_auto') : null });
			});
			fill(body,
				field('template', t('compose.template'), select),
				tpl ? h('div', { class: 'vars', id: `${prefix}-vars`, dataset: { field: 'context' } },
					h('p', { class: 'legend', id: `${prefix}-vars-legend` }, varsLegend(all, names, fromColumns, auto)),
					fromColumns.length ? h('p', { class: 'hint', id: `${prefix}-vars-columns`, dataset: { vars: fromColumns.join(',') } },
						tNodes('campaigns.vars_from_csv', { names: codeNode(fromColumns.join(', ')) })) : null,
					names.length ? h('div', { class: 'vars-grid' }, vars) : null,
					h('p', { class: 'field-error', hidden: true, role: 'alert' })) : null);
		} else {
			const text = h('textarea', {
				id: `${prefix}-body`, rows: 5, dir: 'auto', value: state.body,
				oninput: (e) => { state.body = e.target.value; changed(); },
			});
			const subject = state.channel === 'email' ? field('subject', t('compose.subject'), h('input', {
				id: `${prefix}-subject`, type: 'text', dir: 'auto', value: state.subject,
				oninput: (e) => { state.subject = e.target.value; changed(); },
			})) : null;
			fill(body, subject, field('body', t('compose.body'), text));
		}
	}
	draw();
	return { el: root, redraw: draw };
}

/** the heading of a template's variables: what is left to fill in, or why nothing is */
function varsLegend(all, names, fromColumns, auto) {
	if (!all.length) return t('compose.no_variables');
	if (names.length) return t('compose.variables');
	if (fromColumns.length) return t('compose.variables');
	return tNodes('compose.vars_auto', { names: codeNode(auto.join(', ')) });
}

/**
 * the variables of tpl left empty in vars, which a send would be refused for: those of
 * the language chosen when the template has it, else of every language; clinic_name is
 * filled by the server.
 */
export function missingVars(tpl, vars, { language = '', channel = '' } = {}) {
	const texts = language && String(tpl?.[`body_${language}`] || '').trim()
		? { body_en: '', body_ar: '', subject_en: '', subject_ar: '', [`body_${language}`]: tpl[`body_${language}`], [`subject_${language}`]: tpl[`subject_${language}`] }
		: { ...tpl };
	if (channel !== 'email') { texts.subject_en = ''; texts.subject_ar = ''; }
	const filled = filledVars(vars);
	return placeholders(texts).filter((n) => !AUTO_VARS.includes(n) && !(n in filled));
}

/**
 * the field errors of a refused send or check, with a missing template variable put on
 * that variable's own field (when root has it) instead of on all of them.
 */
export function contentErrors(err, root) {
	const fe = fieldErrors(err);
	const name = missingVariable(err);
	if (name && fe.context && root.querySelector(`[data-field="${CSS.escape(`var.${name}`)}"]`)) {
		fe[`var.${name}`] = fe.context;
		delete fe.context;
	}
	return fe;
}

/** the context to send: the filled variables only (an empty one is left out, so the server names it) */
export function filledVars(vars) {
	const out = {};
	for (const [k, v] of Object.entries(vars || {})) if (String(v).trim() !== '') out[k] = String(v);
	return out;
}

/** the context for a preview: missing variables shown as {{name}} */
export function previewVars(tpl, vars, extra = {}) {
	const out = { ...extra, ...filledVars(vars) };
	for (const n of placeholders(tpl)) if (!(n in out) && !AUTO_VARS.includes(n)) out[n] = `{{${n}}}`;
	return out;
}

/**
 * recordDialog opens a modal form for a record: specs [{name, label, type, options, dir,
 * hint}] (type text, textarea, select, checkbox, checkboxes), values the starting values;
 * save(values) creates or updates and may throw an API error, which is shown next to its
 * field while the dialog stays open with everything typed.
 */
export function recordDialog({ id, title, specs, values, save, fieldErrors, errorText }) {
	const dialog = h('dialog', { class: 'detail edit', id, 'aria-labelledby': `${id}-title` });
	const controls = {};
	const general = h('p', { class: 'form-error', role: 'alert', hidden: true });
	const saveBtn = h('button', { type: 'submit', class: 'primary', id: `${id}-save` }, t('common.save'));
	const form = h('form', { method: 'dialog', novalidate: true }, specs.map((s) => {
		const cid = `${id}-${s.name}`;
		const v = values[s.name];
		let c;
		if (s.type === 'textarea') c = h('textarea', { id: cid, rows: s.rows || 4, dir: s.dir || 'auto', value: v ?? '' });
		else if (s.type === 'select') c = h('select', { id: cid, value: v ?? '' }, s.options.map(([ov, label]) => h('option', { value: ov }, label)));
		else if (s.type === 'checkbox') {
			c = h('input', { id: cid, type: 'checkbox', checked: !!v });
			controls[s.name] = c;
			return h('div', { class: 'field check', dataset: { field: s.name } }, h('label', { class: 'checkbox' }, c, s.label),
				s.hint ? h('p', { class: 'hint' }, s.hint) : null, h('p', { class: 'field-error', hidden: true, role: 'alert' }));
		} else if (s.type === 'checkboxes') {
			const boxes = s.options.map(([ov, label]) => h('label', { class: 'checkbox' },
				h('input', { type: 'checkbox', value: ov, checked: (v || {})[ov] !== false, id: `${cid}-${ov}` }), label));
			c = h('div', { class: 'checks', id: cid }, boxes);
			controls[s.name] = c;
			return field(s.name, s.label, c, { group: true, hint: s.hint });
		} else c = h('input', { id: cid, type: s.inputType || 'text', dir: s.dir || 'auto', value: v ?? '', readOnly: !!s.readOnly });
		controls[s.name] = c;
		return field(s.name, s.label, c, { hint: s.hint });
	}), general, h('div', { class: 'form-actions' }, saveBtn, h('button', { type: 'button', onclick: () => dialog.close() }, t('common.cancel'))));
	const errors = errorsFor(form);
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		errors.clear();
		general.hidden = true;
		const out = {};
		for (const s of specs) {
			const c = controls[s.name];
			if (s.readOnly) continue;
			if (s.type === 'checkbox') out[s.name] = c.checked;
			else if (s.type === 'checkboxes') out[s.name] = Object.fromEntries([...c.querySelectorAll('input')].map((i) => [i.value, i.checked]));
			else out[s.name] = c.value;
		}
		saveBtn.disabled = true;
		try {
			await save(out);
			dialog.close();
		} catch (err) {
			const fe = fieldErrors(err);
			const rest = errors.show(fe);
			if (Object.keys(rest).length || !Object.keys(fe).length) {
				fill(general, Object.values(rest)[0] || errorText(err));
				general.hidden = false;
			}
		} finally {
			saveBtn.disabled = false;
		}
	});
	fill(dialog,
		h('div', { class: 'dialog-head' }, h('h2', { id: `${id}-title` }, title),
			h('button', { type: 'button', class: 'icon', 'aria-label': t('common.close'), onclick: () => dialog.close() }, '×')),
		form);
	dialog.addEventListener('close', () => dialog.remove());
	document.body.append(dialog);
	dialog.showModal();
	return dialog;
}
