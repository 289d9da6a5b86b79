/**
 * Stock Relay settings page (WooCommerce › Stock Relay): loads the relay's status and runs Test connection
 * through the plugin's REST routes (stock-relay/v1/status, /ping), so the page itself never waits for the relay;
 * asks before the actions that cannot be undone. Enqueued on this page only; no build step, no dependency.
 * The HTML of the status comes escaped from the server; everything else is set as text.
 */
(function () {
	'use strict';
	var config = window.stockRelayAdmin;
	if (!config) {
		return;
	}

	function format(template, value) {
		return template.replace('%s', value);
	}

	function request(method, url) {
		return fetch(url, {
			method: method,
			credentials: 'same-origin',
			headers: { 'X-WP-Nonce': config.nonce, Accept: 'application/json' }
		}).then(function (response) {
			return response.json().catch(function () {
				return null;
			}).then(function (body) {
				if (!response.ok || !body) {
					var reason = body && body.message ? body.message : 'HTTP ' + response.status;
					throw new Error(reason);
				}
				return body;
			});
		});
	}

	function notice(box, type, text) {
		var div = document.createElement('div');
		var p = document.createElement('p');
		div.className = 'notice inline notice-' + type;
		p.textContent = text;
		div.appendChild(p);
		box.replaceChildren(div);
	}

	function loading(box, text) {
		var p = document.createElement('p');
		var spinner = document.createElement('span');
		p.className = 'stock-relay-loading';
		spinner.className = 'spinner is-active';
		spinner.style.cssText = 'float:none;margin:0 .5em 0 0';
		p.appendChild(spinner);
		p.appendChild(document.createTextNode(text));
		box.replaceChildren(p);
	}

	function loadStatus(box, refresh) {
		box.setAttribute('aria-busy', 'true');
		loading(box, config.text.loading);
		var url = config.statusUrl + (config.statusUrl.indexOf('?') === -1 ? '?' : '&') + (refresh ? 'refresh=1' : 'refresh=0');
		request('GET', url).then(function (body) {
			box.innerHTML = body.html; // Escaped by the server (Stock_Relay_Status_Panel).
			if (body.at) {
				var foot = document.createElement('p');
				var again = document.createElement('button');
				foot.className = 'description';
				foot.textContent = format(config.text.asOf, new Date(body.at * 1000).toLocaleTimeString()) + ' ';
				again.type = 'button';
				again.className = 'button-link';
				again.textContent = config.text.refresh;
				again.addEventListener('click', function () {
					loadStatus(box, true);
				});
				foot.appendChild(again);
				box.appendChild(foot);
			}
		}).catch(function (error) {
			notice(box, 'error', format(config.text.failed, error.message));
		}).then(function () {
			box.setAttribute('aria-busy', 'false');
		});
	}

	function testConnection(form) {
		var live = document.getElementById('stock-relay-live');
		var button = form.querySelector('[type=submit]');
		if (!live) {
			return;
		}
		button.disabled = true;
		loading(live, config.text.testing);
		request('POST', config.pingUrl).then(function (body) {
			notice(live, body.type, body.message);
		}).catch(function (error) {
			notice(live, 'error', format(config.text.pingErr, error.message));
		}).then(function () {
			button.disabled = false;
		});
	}

	function start() {
		var box = document.getElementById('stock-relay-channels');
		if (box) {
			loadStatus(box, false);
			// Another script of the page changed what the relay reports (a pause or a resume): ask again.
			document.addEventListener('stock-relay:refresh', function () {
				loadStatus(box, true);
			});
		}
		document.querySelectorAll('form[data-stock-relay-action]').forEach(function (form) {
			form.addEventListener('submit', function (event) {
				if (form.getAttribute('data-stock-relay-action') === 'ping') {
					event.preventDefault();
					testConnection(form);
					return;
				}
				var question = form.getAttribute('data-confirm');
				if (question) {
					if (!window.confirm(question)) {
						event.preventDefault();
						return;
					}
					form.querySelector('input[name=confirm]').value = '1';
				}
			});
		});
	}

	if (document.readyState === 'loading') {
		document.addEventListener('DOMContentLoaded', start);
	} else {
		start();
	}
}());
