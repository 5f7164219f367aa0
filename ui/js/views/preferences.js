// Patient preferences: language, channels, categories and opt-outs per patient; a clinic
// admin edits them (an opt-out heard at the desk goes here).
import { fieldErrors, errorText } from '../api.js';
import { ltr } from '../codes.js';
import { h, fill, debounce } from '../dom.js';
import { t, tOr, fmtNumber, fmtDateTime, asciiDigits } from '../i18n.js';
import { recordDialog, CATEGORIES } from '../form.js';

let search = '';

export function mount(el, ctx) {
	const { pb, isAdmin } = ctx;
	let alive = true;
	let page = 1;
	const tbody = h('tbody', { id: 'preferences-body' });
	const count = h('p', { class: 'muted', id: 'preferences-count', 'aria-live': 'polite' });
	const more = h('button', { type: 'button', hidden: true, onclick: () => load(page + 1) }, t('messages.more'));
	const listError = h('p', { class: 'form-error', role: 'alert', hidden: true });
	const box = h('input', {
		id: 'pref-search', type: 'search', dir: 'ltr', value: search, autocomplete: 'off',
		oninput: debounce((e) => { search = e.target.value; load(1); }, 350),
	});
	fill(el,
		h('div', { class: 'screen-head' }, h('h1', {}, t('prefs.title')),
			h('div', { class: 'head-actions' }, isAdmin
				? h('button', { type: 'button', class: 'primary', id: 'pref-new', onclick: () => edit(null) }, t('prefs.new'))
				: h('p', { class: 'muted' }, t('prefs.readonly')))),
		h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
			h('div', { class: 'field grow' }, h('label', { for: 'pref-search' }, t('prefs.search')), box)),
		count, listError,
		h('div', { class: 'table-wrap' }, h('table', { class: 'list' },
			h('thead', {}, h('tr', {},
				h('th', { scope: 'col' }, t('prefs.patient')),
				h('th', { scope: 'col' }, t('prefs.phone')),
				h('th', { scope: 'col' }, t('prefs.language')),
				h('th', { scope: 'col' }, t('prefs.channels')),
				h('th', { scope: 'col' }, t('prefs.opt_out')),
				h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('messages.col_actions'))))),
			tbody)),
		more);

	function filter() {
		const s = asciiDigits(search.trim());
		if (!s) return '';
		const digits = s.replace(/\D/g, '').replace(/^00/, '').replace(/^0/, '');
		return pb.filter('patient_id ~ {:s} || email ~ {:s}' + (digits ? ' || phone ~ {:d}' : ''), { s, d: digits });
	}

	async function load(p) {
		listError.hidden = true;
		try {
			const res = await pb.collection('preferences').getList(p, 50, { filter: filter(), sort: '-updated' });
			if (!alive) return;
			if (p === 1) tbody.replaceChildren();
			page = p;
			tbody.append(...res.items.map(row));
			more.hidden = res.page >= res.totalPages;
			fill(count, res.totalItems ? t('prefs.count', { n: fmtNumber(res.totalItems) }) : t('prefs.empty'));
		} catch (err) {
			if (ctx.fail(err)) return;
			fill(listError, errorText(err));
			listError.hidden = false;
		}
	}

	function row(p) {
		const on = (k, label) => h('span', { class: `tag ${p[k] ? 'on' : 'off'}` }, label, ' ', p[k] ? '✓' : '✕');
		const cats = p.categories && typeof p.categories === 'object'
			? Object.entries(p.categories).filter(([, v]) => v === false).map(([k]) => tOr(`category.${k}`, k)) : [];
		return h('tr', { dataset: { id: p.id } },
			h('td', { 'data-label': t('prefs.patient') }, p.patient_id ? ltr(p.patient_id) : '—', p.email ? h('div', { class: 'muted small' }, ltr(p.email, 'email')) : null),
			h('td', { 'data-label': t('prefs.phone') }, p.phone ? ltr(p.phone, 'phone') : '—'),
			h('td', { 'data-label': t('prefs.language') }, p.language ? t(`lang.${p.language}`) : '—'),
			h('td', { 'data-label': t('prefs.channels') }, h('div', { class: 'tags' }, on('sms', t('channel.sms')), on('whatsapp', t('channel.whatsapp')), on('email_enabled', t('channel.email'))),
				cats.length ? h('div', { class: 'muted small' }, t('prefs.categories_off', { list: cats.join('، ') })) : null),
			h('td', { 'data-label': t('prefs.opt_out') }, p.opted_out
				? h('span', { class: 'badge status-failed' }, t('prefs.opted_out'), p.opted_out_at ? ` · ${fmtDateTime(p.opted_out_at, { dateStyle: 'medium' })}` : '')
				: h('span', { class: 'muted' }, t('prefs.subscribed'))),
			h('td', { class: 'row-actions' }, isAdmin ? h('button', { type: 'button', class: 'small', onclick: () => edit(p), 'aria-label': t('prefs.edit_label', { who: p.patient_id || p.phone || p.email }) }, t('common.edit')) : null));
	}

	function edit(p) {
		recordDialog({
			id: 'pref-edit', title: p ? t('prefs.edit') : t('prefs.new'), fieldErrors, errorText,
			values: p ? { ...p, categories: p.categories || {} } : { sms: true, whatsapp: true, email_enabled: true, categories: {} },
			specs: [
				{ name: 'patient_id', label: t('prefs.patient'), dir: 'ltr' },
				{ name: 'phone', label: t('prefs.phone'), dir: 'ltr', inputType: 'tel' },
				{ name: 'email', label: t('prefs.email'), dir: 'ltr', inputType: 'email' },
				{ name: 'language', label: t('prefs.language'), type: 'select', options: [['', t('compose.language_auto')], ['en', t('lang.en')], ['ar', t('lang.ar')]] },
				{ name: 'sms', label: t('channel.sms'), type: 'checkbox' },
				{ name: 'whatsapp', label: t('channel.whatsapp'), type: 'checkbox' },
				{ name: 'email_enabled', label: t('channel.email'), type: 'checkbox' },
				{ name: 'categories', label: t('prefs.categories'), type: 'checkboxes', options: CATEGORIES.map((c) => [c, t(`category.${c}`)]) },
				{ name: 'opted_out', label: t('prefs.opted_out_label'), type: 'checkbox', hint: t('prefs.opted_out_hint') },
			],
			save: async (v) => {
				if (v.opted_out && !p?.opted_out) v.opt_out_source = 'staff';
				if (p) await pb.collection('preferences').update(p.id, v);
				else await pb.collection('preferences').create(v);
				ctx.toast(t('common.saved'));
				load(1);
			},
		});
	}

	load(1);
	return { unmount() { alive = false; } };
}
