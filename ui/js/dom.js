// dom.js builds elements without innerHTML: every text (a patient's message, a template
// body, an error from the server) goes in as a text node, never as markup.

const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'required', 'multiple', 'open', 'readOnly']);

/** h('button', {class: 'primary', onclick: fn}, 'Send') */
export function h(tag, props, ...children) {
	const el = document.createElement(tag);
	props = props || {};
	for (const [k, v] of Object.entries(props)) {
		if (v == null || v === false || k === 'value') continue;
		if (k === 'class') el.className = v;
		else if (k === 'text') el.textContent = v;
		else if (k === 'dataset') Object.assign(el.dataset, v);
		else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
		else if (PROPS.has(k)) el[k] = v;
		else el.setAttribute(k, v === true ? '' : String(v));
	}
	append(el, children);
	if (props.value != null) el.value = props.value;
	return el;
}

export function append(el, children) {
	for (const c of children.flat(Infinity)) {
		if (c == null || c === false) continue;
		el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return el;
}

/** replace the children of el */
export function fill(el, ...children) {
	el.replaceChildren();
	return append(el, children);
}

let seq = 0;
/** a unique id for label/aria wiring */
export function uid(prefix = 'f') {
	seq += 1;
	return `${prefix}-${seq}`;
}

export function debounce(fn, ms) {
	let timer;
	const d = (...args) => {
		clearTimeout(timer);
		timer = setTimeout(() => fn(...args), ms);
	};
	d.cancel = () => clearTimeout(timer);
	return d;
}
