// The dark/light theme both pages share: prefers-color-scheme decides until
// the toggle is used; the choice is kept in localStorage.
const key = 'marketgate-theme';

function stored() {
  try { return localStorage.getItem(key); } catch { return null; } // storage off
}

function apply(theme) {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
}

// themeToggle applies the stored theme and makes button switch it; changed
// runs after each switch (a canvas redraws in the new colours).
export function themeToggle(button, changed = () => {}) {
  apply(stored());
  button.addEventListener('click', () => {
    const cur = document.documentElement.dataset.theme ||
      (matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark');
    const next = cur === 'light' ? 'dark' : 'light';
    apply(next);
    try { localStorage.setItem(key, next); } catch { /* private mode */ }
    changed(next);
  });
}
