// The invite link is /login#<token>: a URL fragment never reaches the server or a Referer header.
// Move it into the form and out of the address bar (and history).
"use strict";
(function () {
  var input = document.getElementById("token");
  if (!input || location.hash.length < 2) return;
  input.value = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  document.getElementById("login-note").hidden = false;
  document.getElementById("sign-in").focus();
})();
