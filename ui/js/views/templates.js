// Templates: the clinic's and the shared message templates in both languages; a clinic
// admin edits the clinic's own ones and adds new ones.
import { fieldErrors, errorText } from '../api.js';
import { h, fill } from '../dom.js';
import { t, tOr } from '../i18n.js';
import { recordDialog, placeholders, forgetTemplates, CATEGORIES } from '../form.js';

export function mount(el, ctx) {
	const { pb, isAdmin } = ctx;
	let alive = true;
	const listBox = h('div', { class: 'template-list', id: 'template-list' }, h('p', { class: 'muted' }, t('common.loading')));
	fill(el,
		h('div', { class: 'screen-head' }, h('h1', {}, t('templates.title')),
			h('div', { class: 'head-actions' }, isAdmin
				? h('button', { type: 'button', class: 'primary', id: 'template-new', onclick: () => edit(null) }, t('templates.new'))
				: h('p', { class: 'muted', id: 'templates-readonly' }, t('templates.readonly')))),
		listBox);

	async function load() {
		try {
			const list = await pb.collection('templates').getFullList({ sort: 'code' });
			if (!alive) return;
			fill(listBox, list.length ? list.map(card) : h('p', { class: 'empty' }, t('templates.empty')));
		} catch (err) {
			if (ctx.fail(err)) return;
			fill(listBox, h('p', { class: 'form-error', role: 'alert' }, errorText(err)));
		}
	}

	function card(x) {
		const own = x.clinic === ctx.clinic.id;
		const vars = placeholders(x);
		return h('article', { class: 'template', id: `template-${x.code}`, dataset: { id: x.id } },
			h('div', { class: 'panel-head' },
				h('h2', { dir: 'ltr' }, h('code', {}, x.code)),
				h('div', { class: 'tags' },
					h('span', { class: 'tag' }, tOr(`channel.${x.channel}`, x.channel)),
					x.category ? h('span', { class: 'tag' }, tOr(`category.${x.category}`, x.category)) : null,
					own ? null : h('span', { class: 'tag' }, t('templates.shared')),
					h('span', { class: `tag ${x.active ? 'on' : 'off'}` }, x.active ? t('templates.active') : t('templates.inactive')))),
			h('div', { class: 'bodies' },
				body('en', x.subject_en, x.body_en),
				body('ar', x.subject_ar, x.body_ar)),
			vars.length ? h('p', { class: 'muted small' }, t('templates.variables'), ' ', vars.map((v) => h('code', { class: 'var' }, v))) : null,
			isAdmin && own ? h('button', { type: 'button', class: 'edit', id: `edit-${x.code}`, onclick: () => edit(x), 'aria-label': t('templates.edit_label', { code: x.code }) }, t('common.edit')) : null);
	}

	function body(lang, subject, text) {
		return h('div', { class: 'template-body' },
			h('p', { class: 'legend' }, t(`lang.${lang}`)),
			subject ? h('p', { class: 'subject', dir: 'auto', lang, translate: 'no' }, subject) : null,
			text ? h('div', { class: 'bubble', dir: 'auto', lang, translate: 'no' }, text) : h('p', { class: 'muted' }, t('templates.no_text')));
	}

	function edit(x) {
		recordDialog({
			id: 'template-edit', title: x ? t('templates.edit_title', { code: x.code }) : t('templates.new'),
			fieldErrors, errorText,
			values: x || { channel: 'any', category: 'general', active: true },
			specs: [
				{ name: 'code', label: t('templates.code'), dir: 'ltr', hint: t('templates.code_hint') },
				{ name: 'channel', label: t('compose.channel'), type: 'select', options: ['any', 'sms', 'whatsapp', 'email'].map((c) => [c, t(`channel.${c}`)]) },
				{ name: 'category', label: t('compose.category'), type: 'select', options: CATEGORIES.map((c) => [c, t(`category.${c}`)]) },
				{ name: 'body_en', label: t('templates.body_en'), type: 'textarea', dir: 'ltr', hint: t('templates.body_hint') },
				{ name: 'body_ar', label: t('templates.body_ar'), type: 'textarea', dir: 'rtl' },
				{ name: 'subject_en', label: t('templates.subject_en'), dir: 'ltr' },
				{ name: 'subject_ar', label: t('templates.subject_ar'), dir: 'rtl' },
				{ name: 'active', label: t('templates.active'), type: 'checkbox' },
			],
			save: async (v) => {
				if (x) await pb.collection('templates').update(x.id, v);
				else await pb.collection('templates').create(v);
				forgetTemplates();
				ctx.toast(t('common.saved'));
				load();
			},
		});
	}

	load();
	return { unmount() { alive = false; } };
}
