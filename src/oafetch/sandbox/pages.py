"""HTML bodies the sandbox serves: landing pages, walls, challenges and error pages.

Each function returns a complete document. Landing pages carry the usual Highwire
(``citation_*``) meta tags, and point at the PDF in the style the work's page asks for.
"""

from __future__ import annotations

from html import escape

from .model import LinkStyle

_CF_CHALLENGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow">
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>*{box-sizing:border-box;margin:0;padding:0}html{line-height:1.15}</style></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to continue
</span></div></noscript></div></div>
<script>(function(){window._cf_chl_opt={cvId:'3',cZone:'%s',cType:'managed',
cRay:'%s'};var a=document.createElement('script');
a.src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=%s';
document.getElementsByTagName('head')[0].appendChild(a);}());</script></body></html>
"""


def _head(title: str, extra: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>{extra}</head>\n"
    )


def landing(
    *,
    site: str,
    title: str,
    doi: str,
    year: int,
    style: LinkStyle,
    pdf_url: str | None,
    pdf_relative: str | None,
    purchase_path: str | None = None,
    supplement_path: str | None = None,
    tdm_policy: str | None = None,
) -> str:
    """A publisher or repository landing page linking its PDF in `style`.

    Args:
        pdf_url: the absolute PDF URL (meta, link and refresh styles use it).
        pdf_relative: the PDF reference relative to this page (the anchor style uses it).
        purchase_path: for pages without a PDF, a "Buy PDF" link that leads to a checkout page.
        supplement_path: a supplementary PDF (a CONSORT checklist) listed *before* the
            article's own "Download PDF" anchor, as trial reports do: a valid PDF that is not
            the article, so a client that follows page order stores the wrong file.
        tdm_policy: the page reserves TDM rights (TDMRep meta elements) with this policy URL.
    """
    meta = (
        f'<meta name="citation_title" content="{escape(title)}">'
        f'<meta name="citation_doi" content="{escape(doi)}">'
        f'<meta name="citation_publication_date" content="{year}/01/15">'
        f'<meta name="dc.identifier" content="doi:{escape(doi)}">'
    )
    if tdm_policy is not None:
        meta += (
            '<meta name="tdm-reservation" content="1">'
            f'<meta name="tdm-policy" content="{escape(tdm_policy)}">'
        )
    body_link = ""
    if pdf_url is not None and style is LinkStyle.META:
        meta += f'<meta name="citation_pdf_url" content="{escape(pdf_url)}">'
    elif pdf_url is not None and style is LinkStyle.LINK:
        meta += f'<link rel="alternate" type="application/pdf" href="{escape(pdf_url)}">'
    elif pdf_url is not None and style is LinkStyle.REFRESH:
        meta += f'<meta http-equiv="refresh" content="0; url={escape(pdf_url)}">'
    elif pdf_relative is not None and style is LinkStyle.ANCHOR:
        body_link = (
            f'<p class="article-tools"><a class="btn" href="{escape(pdf_relative)}">'
            "Download PDF</a></p>"
        )
        if supplement_path is not None:
            body_link = (
                '<section class="supplementary-material"><h2>Supplementary material</h2>'
                f'<p><a href="{escape(supplement_path)}">S1 CONSORT checklist (PDF, 6 KB)</a>'
                "</p></section>" + body_link
            )
    if style is LinkStyle.NONE and purchase_path:
        body_link = (
            '<p class="access">Access options: <a href="'
            f'{escape(purchase_path)}">Buy article PDF (USD 39.95)</a></p>'
        )
    return (
        _head(f"{title} | {site}", meta)
        + f'<body><header><a href="/">{escape(site)}</a> <a href="/about">About</a></header>\n'
        f"<main><article><h1>{escape(title)}</h1>"
        f'<p class="doi">https://doi.org/{escape(doi)}</p>'
        f"<section><h2>Abstract</h2><p>We study {escape(title.lower())}.</p></section>"
        f"{body_link}</article></main>\n<footer>&copy; {year} {escape(site)}</footer>"
        "</body></html>\n"
    )


_CF_INJECTED = (
    "<script>(function(){window.__CF$cv$params={r:'%s',t:'%s'};"
    "var a=document.createElement('script');"
    "a.src='/cdn-cgi/challenge-platform/scripts/jsd/main.js';"
    "document.getElementsByTagName('head')[0].appendChild(a);})();</script>"
)


def with_cloudflare_script(page: str, ray: str, stamp: str) -> str:
    """``page`` as Cloudflare serves it: its bot-detection script injected before ``</body>``.

    Cloudflare adds this script to every page of a site it fronts; the page stays the page.
    """
    return page.replace("</body>", _CF_INJECTED % (ray, stamp) + "</body>", 1)


def cloudflare_challenge(ray: str) -> str:
    """The Cloudflare managed-challenge interstitial ("Just a moment...")."""
    return _CF_CHALLENGE % (ray[:8], ray, ray)


def captcha(site: str) -> str:
    """A captcha page (served as if it were a PDF)."""
    return (
        _head("Verify you are human") + "<body><h1>Please verify you are a human</h1>"
        f"<p>Access to {escape(site)} has been limited for unusual traffic.</p>"
        '<form method="post" action="/captcha/verify"><div class="g-recaptcha" '
        'data-sitekey="6LcSANDBOXKEYxxxxxxxxxxxxxxxxxxxxxxxxxx"></div>'
        '<button type="submit">Continue</button></form></body></html>\n'
    )


def article_html(title: str, doi: str) -> str:
    """A full-text HTML article page (what an html_as_pdf URL really returns)."""
    return (
        _head(title) + f"<body><main><h1>{escape(title)}</h1><p>doi:{escape(doi)}</p>"
        "<p>The PDF version of this article is being prepared. Please read the HTML "
        "version below.</p><section><h2>1. Introduction</h2><p>Lorem ipsum.</p></section>"
        "</main></body></html>\n"
    )


def pmc_bot_wall(pmcid: str) -> str:
    """PMC's "Preparing to download" proof-of-work page."""
    return (
        _head("Preparing to download ...") + f'<body><div id="pow" data-article="{escape(pmcid)}">'
        "<h1>Preparing to download ...</h1><p>Please wait while we verify your browser.</p>"
        "<noscript>This page requires JavaScript.</noscript></div><script>"
        "var c=0;function w(){c++;if(c<1e6){w()}}/* proof of work */</script></body></html>\n"
    )


def aws_waf() -> str:
    """An AWS WAF challenge page (HTTP 202), as figshare portals serve."""
    return (
        _head("Human Verification")
        + '<body><div id="challenge-container"></div><script src="https://sandbox.invalid/'
        'challenge.js"></script><noscript>JavaScript is disabled</noscript></body></html>\n'
    )


def simple(title: str, message: str) -> str:
    """A minimal page with a heading and one paragraph (errors, checkout, JS shells)."""
    return _head(title) + f"<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>\n"


def wayback_frame(original: str, raw_url: str, timestamp: str) -> str:
    """The Wayback Machine's toolbar page wrapping an archived capture."""
    return (
        _head(f"Wayback Machine - {original}")
        + '<body><div id="wm-ipp-base" lang="en"><div id="wm-ipp">'
        f'<a href="/web/">Wayback Machine</a> <span class="ts">{escape(timestamp)}</span>'
        f'</div></div><iframe id="playback" src="{escape(raw_url)}" '
        'style="width:100%;height:100%"></iframe></body></html>\n'
    )


def osf_shell(guid: str) -> str:
    """OSF's single-page-app shell: no PDF link without JavaScript."""
    return (
        _head("OSF Preprints") + f'<body><div id="app" data-guid="{escape(guid)}"></div>'
        '<script src="/static/preprints.js"></script></body></html>\n'
    )
