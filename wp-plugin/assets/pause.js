/**
 * Pause and resume on the Stock Relay page: the forms of the channels table (Stock_Relay_Pause_Controls) are posted to
 * the plugin's REST routes stock-relay/v1/pause and /resume with the page's wp_rest nonce; the result is shown as a
 * notice, and the channels table is asked for again (the `stock-relay:refresh` event, handled by admin.js). Pausing
 * every channel asks first. Enqueued after admin.js, on this page only; the relay's words are set as text.
 */
(function () {
	'use strict';
	var config = window.stockRelayPause;
	if (!config) {
		return;
	}

	function notice(type, text) {
		var live = document.getElementById('stock-relay-live');
		var div = document.createElement('div');
		var p = document.createElement('p');
		if (!live) {
			return;
		}
		div.className = 'notice inline notice-' + type;
		p.textContent = text;
		div.appendChild(p);
		live.replaceChildren(div);
	}

	function send(form) {
		var action = form.getAttribute('data-stock-relay-pause');
		var reason = form.querySelector('input[name=reason]');
		var buttons = form.querySelectorAll('button, input');
		var question = form.getAttribute('data-confirm');
		var body = { channel: form.getAttribute('data-channel') || '' };
		if (action === 'pause') {
			body.reason = reason ? reason.value : '';
		}
		if (question) {
			if (!window.confirm(question)) {
				return;
			}
			body.confirm = true;
		}
		buttons.forEach(function (element) {
			element.disabled = true;
		});
		notice('info', action === 'pause' ? config.text.pausing : config.text.resuming);
		fetch(action === 'pause' ? config.pauseUrl : config.resumeUrl, {
			method: 'POST',
			credentials: 'same-origin',
			headers: { 'X-WP-Nonce': config.nonce, 'Content-Type': 'application/json', Accept: 'application/json' },
			body: JSON.stringify(body)
		}).then(function (response) {
			return response.json().catch(function () {
				return null;
			}).then(function (answer) {
				if (answer && answer.type && answer.message) {
					notice(answer.type, answer.message);
				} else {
					notice('error', config.text.failed.replace('%s', answer && answer.message ? answer.message : 'HTTP ' + response.status));
				}
				if (response.ok) {
					document.dispatchEvent(new CustomEvent('stock-relay:refresh'));
				}
			});
		}).catch(function (error) {
			notice('error', config.text.failed.replace('%s', error.message));
		}).then(function () {
			buttons.forEach(function (element) {
				element.disabled = false;
			});
		});
	}

	document.addEventListener('submit', function (event) {
		var form = event.target;
		if (form instanceof HTMLFormElement && form.hasAttribute('data-stock-relay-pause')) {
			event.preventDefault();
			send(form);
		}
	});
}());
