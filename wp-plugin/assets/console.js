/**
 * Stock Relay console (issue 17 items 2 and 3): fills the Products list's Sync column (one request for every product
 * on the page), the product box, a product's lineage and the dead-letter list from the plugin's REST routes
 * (stock-relay/v1/products, /lineage, /dead), and retries dead letters (/dead/retry). Pages render without waiting for
 * the relay; this shows a loading state meanwhile. The HTML comes escaped from the server; messages are set as text.
 * Enqueued on those screens only; no build step, no dependency.
 */
(function () {
	'use strict';
	var config = window.stockRelayConsole;
	if (!config) {
		return;
	}

	function request(method, path, body) {
		var headers = { 'X-WP-Nonce': config.nonce, Accept: 'application/json' };
		if (body) {
			headers['Content-Type'] = 'application/json';
		}
		return fetch(config.root + path, {
			method: method,
			credentials: 'same-origin',
			headers: headers,
			body: body ? JSON.stringify(body) : undefined
		}).then(function (response) {
			return response.json().catch(function () {
				return null;
			}).then(function (answer) {
				if (!response.ok || !answer) {
					throw new Error(answer && answer.message ? answer.message : 'HTTP ' + response.status);
				}
				return answer;
			});
		});
	}

	function query(params) {
		return Object.keys(params).map(function (key) {
			return encodeURIComponent(key) + '=' + encodeURIComponent(params[key]);
		}).join('&');
	}

	function failed(error) {
		return config.text.failed.replace('%s', error.message);
	}

	function notice(box, type, text) {
		var div = document.createElement('div');
		var p = document.createElement('p');
		div.className = 'notice inline notice-' + type;
		p.textContent = text;
		div.appendChild(p);
		box.replaceChildren(div);
	}

	function loading(box) {
		var p = document.createElement('p');
		var spinner = document.createElement('span');
		spinner.className = 'spinner is-active';
		spinner.style.cssText = 'float:none;margin:0 .5em 0 0';
		p.appendChild(spinner);
		p.appendChild(document.createTextNode(config.text.loading));
		box.replaceChildren(p);
		box.setAttribute('aria-busy', 'true');
	}

	function fill(box, html) {
		box.innerHTML = html; // Escaped by the server (Stock_Relay_Product_Screen, Stock_Relay_Dead_Letters_Page).
		box.setAttribute('aria-busy', 'false');
	}

	// The Products list: one request for the page's products.
	function loadColumn(cells) {
		var ids = cells.map(function (cell) {
			return cell.getAttribute('data-product');
		});
		request('GET', 'products?' + query({ ids: ids.join(',') })).then(function (answer) {
			cells.forEach(function (cell) {
				fill(cell, answer.columns[cell.getAttribute('data-product')] || '');
			});
		}).catch(function (error) {
			cells.forEach(function (cell) {
				cell.textContent = failed(error);
			});
		});
	}

	// The product box: the product and its variations.
	function loadBox(box) {
		request('GET', 'products?' + query({ ids: box.getAttribute('data-product') })).then(function (answer) {
			fill(box, answer.box || '');
		}).catch(function (error) {
			notice(box, 'error', failed(error));
		});
	}

	function loadLineage(box) {
		request('GET', 'lineage?' + query({ product: box.getAttribute('data-product') })).then(function (answer) {
			fill(box, answer.html);
		}).catch(function (error) {
			notice(box, 'error', failed(error));
		});
	}

	// The dead-letter list: tabs per channel, pages by cursor, retry per item or for the selection.
	function deadList(box) {
		var state = { channel: box.getAttribute('data-channel') || '', cursor: 0 };
		var out = document.getElementById('stock-relay-dead-notice');

		function load() {
			loading(box);
			request('GET', 'dead?' + query({ channel: state.channel, cursor: state.cursor })).then(function (answer) {
				fill(box, answer.html);
			}).catch(function (error) {
				notice(box, 'error', failed(error));
			});
		}

		function retry(items, button) {
			if (!items.length) {
				notice(out, 'warning', config.text.none);
				return;
			}
			button.disabled = true;
			notice(out, 'info', config.text.retrying);
			request('POST', 'dead/retry', { items: items }).then(function (answer) {
				notice(out, answer.type, answer.message);
				load();
			}).catch(function (error) {
				notice(out, 'error', failed(error));
				button.disabled = false;
			});
		}

		box.addEventListener('click', function (event) {
			var target = event.target;
			if (target.matches('a[data-channel]')) {
				event.preventDefault();
				state.channel = target.getAttribute('data-channel');
				state.cursor = 0;
				load();
			} else if (target.matches('.stock-relay-dead-page')) {
				state.cursor = parseInt(target.getAttribute('data-cursor'), 10) || 0;
				load();
			} else if (target.matches('.stock-relay-dead-retry')) {
				retry([JSON.parse(target.getAttribute('data-item'))], target);
			} else if (target.id === 'stock-relay-dead-retry-selected') {
				retry(Array.prototype.map.call(box.querySelectorAll('.stock-relay-dead-item:checked'), function (input) {
					return JSON.parse(input.value);
				}), target);
			} else if (target.id === 'stock-relay-dead-all') {
				box.querySelectorAll('.stock-relay-dead-item').forEach(function (input) {
					input.checked = target.checked;
				});
			}
		});
		load();
	}

	function start() {
		var cells = Array.prototype.slice.call(document.querySelectorAll('.stock-relay-sync[data-product]'));
		if (cells.length) {
			loadColumn(cells);
		}
		document.querySelectorAll('.stock-relay-box[data-product]').forEach(loadBox);
		var lineage = document.getElementById('stock-relay-lineage');
		if (lineage) {
			loadLineage(lineage);
		}
		var dead = document.getElementById('stock-relay-dead');
		if (dead) {
			deadList(dead);
		}
	}

	if (document.readyState === 'loading') {
		document.addEventListener('DOMContentLoaded', start);
	} else {
		start();
	}
}());
