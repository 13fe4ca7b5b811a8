// Ranking K responses by dragging or by keyboard alone; ties; idempotent, retried submission.
//
// The list is the ranking, best first. A card's data-tie="1" means "tied with the card above".
// Every submission carries a client-made id, kept in sessionStorage until the server has
// acknowledged it: a retry (network error, double click, reload) sends the same id and the server
// stores the answer once.
"use strict";
(function () {
  var root = document.getElementById("task");
  if (!root) return;
  var list = document.getElementById("ranking");
  var statusBox = document.getElementById("status");
  var submitButton = document.getElementById("submit");
  var skipButton = document.getElementById("skip");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var project = root.dataset.project;
  var taskId = Number(root.dataset.task);
  var opened = Date.now();
  var touched = false;
  var warnedUntouched = false;
  var busy = false;

  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);  // available without https, unlike crypto.randomUUID
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }
  var storeKey = "rlhf-submission:" + project + ":" + taskId;
  var submissionId = sessionStorage.getItem(storeKey) || randomId();
  sessionStorage.setItem(storeKey, submissionId);

  function cards() { return Array.prototype.slice.call(list.querySelectorAll(":scope > .card")); }
  function say(text) { statusBox.textContent = text; }
  function name(card) { return card.getAttribute("aria-label"); }

  function ranks() {
    var rank = 0;
    return cards().map(function (card, i) {
      if (i === 0 || card.dataset.tie !== "1") rank += 1;
      return rank;
    });
  }

  function render() {
    var r = ranks();
    cards().forEach(function (card, i) {
      if (i === 0) card.dataset.tie = "";
      var tied = card.dataset.tie === "1";
      var shared = (i > 0 && tied) || (i + 1 < r.length && r[i + 1] === r[i]);
      card.querySelector(".rank").textContent = (shared ? "=" : "") + r[i];
      card.classList.toggle("tied", tied);
      var tie = card.querySelector("button.tie");
      tie.setAttribute("aria-pressed", tied ? "true" : "false");
      tie.disabled = i === 0;
    });
    showPair();
  }

  function moveTo(card, index) {
    var order = cards();
    var from = order.indexOf(card);
    if (index < 0 || index >= order.length || index === from) return;
    order.splice(from, 1);
    order.splice(index, 0, card);
    card.dataset.tie = "";  // a moved card leaves any tie it was in
    order.forEach(function (c) { list.appendChild(c); });
    touched = true;
    render();
    card.focus();
    say(name(card) + " is now at place " + (index + 1) + " of " + order.length + ".");
  }

  function toggleTie(card) {
    var i = cards().indexOf(card);
    if (i === 0) return;
    card.dataset.tie = card.dataset.tie === "1" ? "" : "1";
    touched = true;
    render();
    say(name(card) + (card.dataset.tie === "1" ? " is tied with the response above." : " is no longer tied."));
  }

  // ---------------------------------------------------------------- keyboard
  list.addEventListener("keydown", function (e) {
    var card = e.target;
    if (!card.classList || !card.classList.contains("card")) return;  // keys in a select or checkbox are theirs
    var order = cards();
    var i = order.indexOf(card);
    var moving = e.altKey || e.shiftKey;
    if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      var j = e.key === "ArrowUp" ? i - 1 : i + 1;
      if (j >= 0 && j < order.length) {
        if (moving) moveTo(card, j); else order[j].focus();
      }
    } else if (e.key === "Home") {
      order[0].focus();
    } else if (e.key === "End") {
      order[order.length - 1].focus();
    } else if (/^[1-9]$/.test(e.key) && !e.ctrlKey && !e.metaKey) {
      moveTo(card, Math.min(Number(e.key), order.length) - 1);
    } else if ((e.key === "t" || e.key === "T") && !e.ctrlKey && !e.metaKey) {
      toggleTie(card);
    } else {
      return;
    }
    e.preventDefault();
  });
  document.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      submitRanking();
    }
  });
  list.addEventListener("click", function (e) {
    var tie = e.target.closest("button.tie");
    if (tie) toggleTie(tie.closest(".card"));
  });

  // ---------------------------------------------------------------- dragging (mouse, pen, touch)
  // Near the top or bottom edge of the window the page scrolls while a card is held, faster the
  // nearer the edge, so that a card can be dragged past responses taller than the screen.
  var EDGE = 70;        // px from the window's edge where scrolling starts
  var MAX_SPEED = 24;   // px per frame at the very edge
  var drag = null;

  function place(clientY) {
    var before = null;
    var others = cards().filter(function (c) { return c !== drag.card; });
    for (var k = 0; k < others.length; k++) {
      var box = others[k].getBoundingClientRect();
      if (clientY < box.top + box.height / 2) { before = others[k]; break; }
    }
    if (before !== drag.card.nextElementSibling || (!before && list.lastElementChild !== drag.card)) {
      if (before) list.insertBefore(drag.card, before); else list.appendChild(drag.card);
      drag.moved = true;
      render();
    }
  }

  function autoScroll() {
    if (!drag) return;
    var y = drag.y, speed = 0;
    if (y < EDGE) speed = -MAX_SPEED * (EDGE - y) / EDGE;
    else if (y > window.innerHeight - EDGE) speed = MAX_SPEED * (y - (window.innerHeight - EDGE)) / EDGE;
    if (speed !== 0) {
      var before = window.scrollY;
      window.scrollBy(0, Math.round(speed) || (speed < 0 ? -1 : 1));
      if (window.scrollY !== before) place(y);  // the cards moved under a still pointer
    }
    drag.frame = requestAnimationFrame(autoScroll);
  }

  list.addEventListener("pointerdown", function (e) {
    var head = e.target.closest(".card-head");
    if (!head || e.target.closest("button") || busy || sideBySide()) return;
    drag = { card: head.closest(".card"), pointer: e.pointerId, moved: false, from: cards().indexOf(head.closest(".card")), y: e.clientY };
    drag.card.classList.add("dragging");
    head.setPointerCapture(e.pointerId);
    drag.frame = requestAnimationFrame(autoScroll);
    e.preventDefault();
  });
  list.addEventListener("pointermove", function (e) {
    if (!drag || e.pointerId !== drag.pointer) return;
    drag.y = e.clientY;
    place(e.clientY);
  });
  function endDrag(e) {
    if (!drag || e.pointerId !== drag.pointer) return;
    cancelAnimationFrame(drag.frame);
    var card = drag.card;
    card.classList.remove("dragging");
    if (drag.moved && cards().indexOf(card) !== drag.from) {
      card.dataset.tie = "";
      touched = true;
      render();
      say(name(card) + " is now at place " + (cards().indexOf(card) + 1) + ".");
    }
    drag = null;
    card.focus();
  }
  list.addEventListener("pointerup", endDrag);
  list.addEventListener("pointercancel", endDrag);

  // ---------------------------------------------------------------- views: side by side (K = 2), raw text
  var sideToggle = document.getElementById("side-toggle");
  var rawToggle = document.getElementById("raw-toggle");
  var pairChoice = document.getElementById("pair-choice");
  function sideBySide() { return list.classList.contains("side"); }

  function setSide(on) {
    list.classList.toggle("side", on);
    sideToggle.setAttribute("aria-pressed", on ? "true" : "false");
    try { localStorage.setItem("rlhf-side-by-side", on ? "1" : "0"); } catch (err) { /* private mode */ }
  }
  if (sideToggle) {
    var saved = null;
    try { saved = localStorage.getItem("rlhf-side-by-side"); } catch (err) { /* private mode */ }
    setSide(saved !== "0");
    sideToggle.addEventListener("click", function () { setSide(!sideBySide()); });
  }
  rawToggle.addEventListener("click", function () {
    var on = !root.classList.contains("show-raw");
    root.classList.toggle("show-raw", on);
    rawToggle.setAttribute("aria-pressed", on ? "true" : "false");
  });

  // A pair is decided with one of three buttons; A stays on the left whatever the order.
  function pairState() {
    var order = cards();
    if (order[1].dataset.tie === "1") return "tie";
    return order[0].dataset.pos;
  }
  function showPair() {
    if (!pairChoice) return;
    var state = touched ? pairState() : null;
    pairChoice.querySelectorAll("button").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.choice === state ? "true" : "false");
    });
  }
  function choose(choice) {
    var order = cards();
    if (choice === "tie") {
      order[1].dataset.tie = "1";
    } else {
      var winner = list.querySelector('.card[data-pos="' + choice + '"]');
      list.insertBefore(winner, order[0] === winner ? order[1] : order[0]);
      cards()[1].dataset.tie = "";
    }
    touched = true;
    render();
    showPair();
    say(choice === "tie" ? "A and B are ranked equal." : "Response " + "AB"[Number(choice)] + " is ranked better.");
  }
  if (pairChoice) {
    pairChoice.addEventListener("click", function (e) {
      var b = e.target.closest("button[data-choice]");
      if (b) choose(b.dataset.choice);
    });
    // side by side, the keys follow the layout: Left = A is better, Right = B, "=" = equal
    document.addEventListener("keydown", function (e) {
      if (!sideBySide() || busy || e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.target.closest && e.target.closest("input, select, textarea, details")) return;
      var choice = { ArrowLeft: "0", ArrowRight: "1", "=": "tie" }[e.key];
      if (choice === undefined) return;
      e.preventDefault();
      choose(choice);
    });
  }

  // ---------------------------------------------------------------- submitting
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function setBusy(on) {
    busy = on;
    submitButton.disabled = on;
    skipButton.disabled = on;
  }

  // Asking for the next task assigns one, so it is a POST; the page then shows it.
  async function nextTask() {
    try {
      await fetch("/api/p/" + encodeURIComponent(project) + "/next", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf },
      });
    } catch (err) { /* the page offers a "Next task" button instead */ }
    location.assign(location.pathname);
  }

  var revising = root.dataset.mode === "revise";

  async function send(body) {
    if (busy) return;
    setBusy(true);
    var url = "/api/p/" + encodeURIComponent(project) + "/submit";
    if (revising) {  // a new version of an answered task: no submission id, the server keeps both
      url = "/api/p/" + encodeURIComponent(project) + "/labels/" + taskId;
      delete body.action;
    } else {
      body.submission_id = submissionId;
      body.task_id = taskId;
      body.elapsed_ms = Date.now() - opened;
    }
    for (var attempt = 0; ; attempt++) {
      var response = null;
      try {
        response = await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body),
        });
      } catch (err) {
        response = null;
      }
      if (response && response.ok) {
        sessionStorage.removeItem(storeKey);
        if (revising) {
          say("Saved as a new version.");
          location.assign("/p/" + encodeURIComponent(project) + "/answers");
          return;
        }
        say("Saved. Loading the next task\u2026");
        nextTask();
        return;
      }
      var retry = !response || response.status >= 500 || response.status === 429;
      if (retry && attempt < 6) {
        say("Could not save yet (" + (response ? "server error " + response.status : "no connection") +
            "); trying again\u2026");
        await sleep(400 * Math.pow(2, attempt));
        continue;
      }
      var message = response ? (await response.json().catch(function () { return {}; })).error : null;
      if (response && response.status === 409 && !revising) {
        say((message || "Already answered.") + " Loading the next task\u2026");
        sessionStorage.removeItem(storeKey);
        setTimeout(nextTask, 1500);
        return;
      }
      say("Not saved: " + (message || "the server could not be reached") + ". Your ranking is still here; try again.");
      setBusy(false);
      return;
    }
  }

  function submitRanking() {
    if (!touched && !warnedUntouched) {
      warnedUntouched = true;
      say("You have not changed the order. Submit again to keep it as it is.");
      return;
    }
    var r = ranks();
    var k = r.length;
    var byPos = new Array(k), scores = new Array(k), flags = new Array(k);
    cards().forEach(function (card, i) {
      var pos = Number(card.dataset.pos);
      byPos[pos] = r[i];
      var score = card.querySelector("select.score").value;
      scores[pos] = score ? Number(score) : null;
      flags[pos] = Array.prototype.map.call(card.querySelectorAll("input.flag:checked"), function (x) { return x.value; });
    });
    send({ action: "rank", ranks: byPos, scores: scores, flags: flags });
  }

  function skipTask() {
    var reason = document.getElementById("skip-reason").value;
    if (reason === "other") reason = document.getElementById("skip-other").value.trim();
    if (!reason) { say("Write a reason to skip."); return; }
    send({ action: "skip", skip_reason: reason });
  }

  submitButton.addEventListener("click", submitRanking);
  skipButton.addEventListener("click", skipTask);
  render();
  if (root.dataset.mode === "revise") { touched = true; showPair(); }  // the order shown is the rater's own
})();
