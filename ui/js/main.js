// main.js: signs a clinic user in, draws the frame (header, navigation, language switch)
// and mounts one screen at a time by the URL fragment (#/overview, #/messages, …).
import { pb, errorText } from './api.js';
import * as live from './live.js';
import { h, fill } from './dom.js';
import { t, getLang, setLang, applyLang, setTimeZone } from './i18n.js';
import * as overview from './views/overview.js';
import * as messages from './views/messages.js';
import * as compose from './views/compose.js';
import * as campaigns from './views/campaigns.js';
import * as templates from './views/templates.js';
import * as preferences from './views/preferences.js';

const screens = { overview, messages, compose, campaigns, templates, preferences };
const root = document.getElementById('app');
let session = null; // {user, clinic}
let current = null; // {name, unmount}
let loginNotice = '';

applyLang();
window.addEventListener('hashchange', () => route());
start();

async function start() {
	const rec = pb.authStore.record;
	if (pb.authStore.isValid && rec?.collectionName === 'users') {
		try {
			await pb.collection('users').authRefresh();
			await openSession();
			return;
		} catch (err) {
			if (err.status === 0) loginNotice = errorText(err);
			pb.authStore.clear();
		}
	}
	showLogin();
}

async function openSession() {
	const user = pb.authStore.record;
	if (!user.clinic) throw Object.assign(new Error('no clinic'), { status: 403, code: 'no_clinic' });
	if (user.role === 'app') throw Object.assign(new Error('app'), { status: 403, code: 'app_account' });
	const clinic = await pb.collection('clinics').getOne(user.clinic);
	setTimeZone(clinic.timezone || 'Asia/Riyadh');
	session = { user, clinic };
	route();
}

function signOut(notice = '') {
	unmountCurrent();
	live.stop().catch(() => {});
	pb.authStore.clear();
	session = null;
	loginNotice = notice;
	showLogin();
}

/** ctx is what every screen gets */
function ctx() {
	return {
		pb,
		user: session.user,
		clinic: session.clinic,
		isAdmin: session.user.role === 'admin',
		toast,
		navigate: (hash) => { window.location.hash = hash; },
		fail: (err) => {
			if (err?.status === 401) {
				signOut(t('error.session'));
				return true;
			}
			return false;
		},
	};
}

function langButton() {
	const other = getLang() === 'ar' ? 'en' : 'ar';
	return h('button', {
		type: 'button', class: 'lang-switch', id: 'lang-switch', lang: other,
		'aria-label': t('nav.switch_language'),
		onclick: () => { setLang(other); rerender(); },
	}, other === 'ar' ? 'العربية' : 'English');
}

function rerender() {
	if (session) {
		current = null;
		route(true);
	} else {
		showLogin();
	}
}

function showLogin() {
	document.title = `${t('login.title')} · clinicmsg`;
	const err = h('p', { class: 'form-error', id: 'login-error', role: 'alert', hidden: !loginNotice }, loginNotice);
	const email = h('input', { id: 'login-email', name: 'email', type: 'email', autocomplete: 'username', required: true, dir: 'ltr' });
	const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, dir: 'ltr' });
	const submit = h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, t('login.submit'));
	const form = h('form', {
		class: 'login-card', 'aria-labelledby': 'login-title',
		onsubmit: async (ev) => {
			ev.preventDefault();
			err.hidden = true;
			submit.disabled = true;
			submit.textContent = t('login.signing_in');
			try {
				await pb.collection('users').authWithPassword(email.value.trim(), password.value);
				loginNotice = '';
				await openSession();
			} catch (e) {
				pb.authStore.clear();
				let msg;
				if (e.code === 'no_clinic') msg = t('login.no_clinic');
				else if (e.code === 'app_account') msg = t('login.app_account');
				else if (e.status === 400) msg = t('login.failed');
				else msg = errorText(e);
				fill(err, msg);
				err.hidden = false;
				submit.disabled = false;
				submit.textContent = t('login.submit');
				password.select();
			}
		},
	},
	h('h1', { id: 'login-title' }, t('login.title')),
	h('p', { class: 'muted' }, t('login.intro')),
	h('div', { class: 'field' }, h('label', { for: 'login-email' }, t('login.email')), email),
	h('div', { class: 'field' }, h('label', { for: 'login-password' }, t('login.password')), password),
	err,
	submit);
	fill(root, h('div', { class: 'login-page' },
		h('div', { class: 'login-top' }, h('span', { class: 'brand' }, 'clinicmsg'), langButton()),
		h('main', { id: 'main' }, form)));
	email.focus();
}

function parseHash() {
	const raw = window.location.hash.replace(/^#\/?/, '');
	const [path, query = ''] = raw.split('?');
	const name = screens[path] ? path : 'overview';
	return { name, params: new URLSearchParams(query) };
}

function unmountCurrent() {
	if (current?.unmount) {
		try { current.unmount(); } catch { /* a screen's cleanup must not block the next */ }
	}
	current = null;
}

function route(force = false) {
	if (!session) return;
	const { name, params } = parseHash();
	if (!force && current?.name === name && current.update) {
		current.update(params);
		return;
	}
	unmountCurrent();
	const main = h('main', { id: 'main', tabindex: '-1', class: `screen screen-${name}` });
	fill(root, frame(name), main, h('div', { id: 'toast', class: 'toast', role: 'status', 'aria-live': 'polite' }));
	document.title = `${t(`nav.${name}`)} · ${session.clinic.name} · clinicmsg`;
	const c = ctx();
	const res = screens[name].mount(main, c, params) || {};
	current = { name, unmount: res.unmount, update: res.update };
}

function frame(active) {
	const items = ['overview', 'messages', 'compose', 'campaigns', 'templates', 'preferences'];
	const u = session.user;
	return h('header', { class: 'topbar' },
		h('a', {
			class: 'skip-link', href: '#main',
			onclick: (ev) => { ev.preventDefault(); document.getElementById('main')?.focus(); },
		}, t('nav.skip')),
		h('div', { class: 'brand-block' },
			h('span', { class: 'brand' }, 'clinicmsg'),
			h('span', { class: 'clinic-name', id: 'clinic-name', translate: 'no', dir: 'auto' }, session.clinic.name)),
		h('nav', { 'aria-label': t('nav.label'), class: 'mainnav' },
			h('ul', {}, items.map((k) => h('li', {},
				h('a', { href: `#/${k}`, id: `nav-${k}`, 'aria-current': k === active ? 'page' : null }, t(`nav.${k}`)))))),
		h('div', { class: 'account' },
			h('span', { class: 'who', title: u.email },
				h('span', { class: 'who-name', translate: 'no', dir: 'auto' }, u.name || u.email),
				h('span', { class: 'role-badge' }, t(`role.${u.role || 'staff'}`))),
			langButton(),
			h('button', {
				type: 'button', id: 'sign-out',
				onclick: () => {
					// The next person starts on the overview, not on this person's screen.
					window.history.replaceState(null, '', window.location.pathname);
					signOut();
				},
			}, t('nav.sign_out'))));
}

let toastTimer;
function toast(text, kind = 'ok') {
	const el = document.getElementById('toast');
	if (!el) return;
	el.className = `toast show toast-${kind}`;
	fill(el, text);
	clearTimeout(toastTimer);
	toastTimer = setTimeout(() => { el.className = 'toast'; }, 5000);
}
